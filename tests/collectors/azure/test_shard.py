"""Sharding: every resource in exactly one shard, the same answer in every process, and n replicas that together
export what one replica would, once."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snat_exporter.cli import _overrides, build_parser
from snat_exporter.collectors.azure.config import AzureConfig
from snat_exporter.collectors.azure.shard import Shard, ShardError, resolve_shard, shard_of
from snat_exporter.config import load_config
from snat_exporter.settings import ConfigError
from tests.collectors.azure.rigs import estate

IDS = [
    f"/subscriptions/{sub:08x}-0000-4000-8000-000000000000/resourceGroups/rg-{sub % 7}/providers/"
    f"Microsoft.Network/{'loadBalancers' if i % 5 else 'natGateways'}/res-{i}"
    for sub in range(4)
    for i in range(300)
]


@pytest.mark.parametrize("count", [1, 2, 3, 7, 16])
def test_shares_cover_every_resource_once_and_evenly(count: int) -> None:
    shares = [[r for r in IDS if Shard(i, count).owns(r)] for i in range(count)]
    assert sorted(r for share in shares for r in share) == sorted(IDS)  # no gap, no overlap
    expected = len(IDS) / count
    assert all(abs(len(share) - expected) < 0.25 * expected + 5 for share in shares), [len(s) for s in shares]


@settings(max_examples=200, deadline=None)
@given(
    rid=st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=200), count=st.integers(1, 64)
)
def test_exactly_one_shard_owns_any_id_whatever_its_case(rid: str, count: int) -> None:
    # ARM resource IDs are ASCII; ARM itself is case-insensitive about them
    owners = [i for i in range(count) if Shard(i, count).owns(rid)]
    assert len(owners) == 1
    assert shard_of(rid.upper(), count) == shard_of(rid.lower(), count) == owners[0]


def test_growing_by_one_replica_moves_only_its_share() -> None:
    moved = sum(shard_of(r, 4) != shard_of(r, 5) for r in IDS)
    assert moved < 0.3 * len(IDS)  # about 1/5 move (to the new shard); mod-n hashing would move about 4/5
    assert all(shard_of(r, 5) == 4 for r in IDS if shard_of(r, 4) != shard_of(r, 5))


def test_the_same_shards_in_another_process_with_another_hash_seed() -> None:
    code = (
        "import sys; from snat_exporter.collectors.azure.shard import shard_of; "
        "print(','.join(str(shard_of(line.strip(), 5)) for line in sys.stdin))"
    )
    here = ",".join(str(shard_of(r, 5)) for r in IDS)
    for seed in ("1", "12345"):
        out = subprocess.run(
            [sys.executable, "-c", code],
            input="\n".join(IDS),
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
            timeout=60,
            check=True,
        )
        assert out.stdout.strip() == here


def _azure(**values: Any) -> AzureConfig:
    config = load_config(None, environ={}, overrides={f"azure.{k}": v for k, v in values.items()})
    return config.azure


def test_shard_from_setting_flag_and_statefulset_ordinal() -> None:
    assert resolve_shard(_azure(), "anything-3") == Shard(0, 1)
    assert resolve_shard(_azure(shard="2/4"), None) == Shard(2, 4)
    assert resolve_shard(_azure(shards="4"), "snat-exporter-azure-3") == Shard(3, 4)
    with pytest.raises(ShardError, match="HOSTNAME"):
        resolve_shard(_azure(shards="4"), "snat-exporter")
    with pytest.raises(ShardError, match="ordinal 4"):
        resolve_shard(_azure(shards="4"), "snat-exporter-4")
    args = build_parser().parse_args(["serve", "--shard", "1/3"])
    assert _overrides(args)["azure.shard"] == "1/3"


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"shard": "3/3"}, "azure.shard"),
        ({"shard": "x"}, "azure.shard"),
        ({"shard": "1/2", "shards": "3"}, "azure.shards"),
    ],
)
def test_bad_shard_settings_are_config_errors(values: dict[str, str], field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _azure(**values)
    assert field in [p for p, _ in caught.value.problems]


async def test_replicas_together_export_each_series_once(make_rig) -> None:
    data = estate(lbs=9, nats=4)
    whole = await make_rig(data)
    shards = [await make_rig(data, shard=f"{i}/3") for i in range(3)]
    for rig in (whole, *shards):
        assert await rig.run()
    everything = [s for s in await whole.samples("azure_")]
    parts = [await rig.samples("azure_") for rig in shards]
    union = sorted(s for part in parts for s in part)
    assert union == everything  # no gap, no duplicate (a duplicate would show up twice in the union)
    assert [len([s for s in part if s[0] == "azure_cluster_outbound_info"]) for part in parts] == [1, 0, 0]
    assert all(part for part in parts)  # 14 resources: each shard has some
    watched = [
        await rig.value("snat_exporter_azure_watched_resources", resource_type="load_balancer")
        + await rig.value("snat_exporter_azure_watched_resources", resource_type="nat_gateway")
        for rig in shards
    ]
    assert sum(watched) == 1 + 9 + 4
    assert [await rig.value("snat_exporter_azure_shard_index") for rig in shards] == [0, 1, 2]
    # discovery still runs in every shard; only the metric queries are split
    assert all(rig.requests("arm") for rig in shards)
    queried = [{rid.lower() for r in rig.requests("batch") for rid in r.body["resourceids"]} for rig in shards]
    assert sum(len(q) for q in queried) == len(set().union(*queried)) == 1 + 9 + 4
