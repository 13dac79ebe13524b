"""Sharding a very large estate across replicas: which resources' metrics this replica queries.

Each resource belongs to exactly one of ``n`` shards, chosen by a jump consistent hash (Lamping and Veach, 2014) of
a 64-bit digest of its lower-cased resource ID. A digest, not ``hash()``, so that every process agrees whatever
its PYTHONHASHSEED; lower-cased because ARM spells resource groups in either case. Jump hashing moves only about
1/n of the resources when a replica is added, so most counters keep running on the replica that had them.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from snat_exporter.collectors.azure.config import AzureConfig

_ORDINAL_RE = re.compile(r"-(\d+)$")
_MULTIPLIER = 2862933555777941757
_MASK = (1 << 64) - 1


class ShardError(ValueError):
    """The shard cannot be worked out from the settings and the environment."""


def resource_key(resource_id: str) -> int:
    digest = hashlib.blake2b(resource_id.strip().lower().encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def jump_hash(key: int, buckets: int) -> int:
    """The bucket in [0, buckets) of a 64-bit key."""
    if buckets < 1:
        raise ValueError("buckets must be at least 1")
    bucket, candidate = -1, 0
    while candidate < buckets:
        bucket = candidate
        key = (key * _MULTIPLIER + 1) & _MASK
        candidate = int((bucket + 1) * (float(1 << 31) / float((key >> 33) + 1)))
    return bucket


def shard_of(resource_id: str, count: int) -> int:
    return jump_hash(resource_key(resource_id), count)


@dataclass(frozen=True)
class Shard:
    index: int = 0
    count: int = 1

    def owns(self, resource_id: str) -> bool:
        return self.count == 1 or shard_of(resource_id, self.count) == self.index

    @property
    def primary(self) -> bool:
        """Shard 0 also exports what is not per resource (the cluster info), so it appears once."""
        return self.index == 0

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def resolve_shard(config: AzureConfig, hostname: str | None) -> Shard:
    """``shard: i/n`` if set; else with ``shards: n`` the StatefulSet ordinal ending ``hostname``; else 0/1."""
    if config.shard is not None:
        index, count = (int(p) for p in config.shard.split("/"))
        return Shard(index, count)
    if config.shards is None:
        return Shard()
    m = _ORDINAL_RE.search(hostname or "")
    if m is None:
        raise ShardError(
            f"`shards: {config.shards}` takes this replica's index from a StatefulSet pod name ending in -<ordinal>, "
            f"but HOSTNAME is {hostname!r}; set `shard: i/{config.shards}` (or --shard) instead"
        )
    index = int(m.group(1))
    if index >= config.shards:
        raise ShardError(f"HOSTNAME {hostname!r} gives ordinal {index}, but `shards` is {config.shards}")
    return Shard(index, config.shards)
