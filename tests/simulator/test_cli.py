"""`snat-exporter simulate` / `python -m snat_exporter.simulator` as a user runs them: a process, a URL, SIGTERM."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys

import aiohttp

from snat_exporter.simulator import load_scenario

DEADLINE = 20.0


async def test_simulate_prints_url_and_config_serves_and_stops_on_sigterm() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "snat_exporter",
        "simulate",
        "--scenario",
        "natgw",
        "--listen",
        "127.0.0.1:0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        printed = ""
        while "credential: none" not in printed:
            line = await asyncio.wait_for(proc.stdout.readline(), DEADLINE)
            assert line, f"simulator exited early: {printed!r}"
            printed += line.decode()
        url = re.search(r"listening on (http://127\.0\.0\.1:\d+)", printed).group(1)  # type: ignore[union-attr]
        scenario = load_scenario("natgw")
        assert f"arm_endpoint: {url}" in printed
        assert f"subscription_id: {scenario.subscription_id}" in printed
        async with (
            aiohttp.ClientSession() as session,
            session.get(url + scenario.cluster.id, params={"api-version": "2024-05-01"}) as resp,
        ):
            assert resp.status == 200
            assert (await resp.json())["properties"]["networkProfile"]["outboundType"] == "managedNATGateway"
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), DEADLINE) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_bad_scenario_exits_2_naming_it(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("subscription_id: 11111111-2222-3333-4444-555555555555\ncluster: {resource_group: rg}\n")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "snat_exporter.simulator",
        "--scenario",
        str(bad),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), DEADLINE)
    assert proc.returncode == 2
    assert "cluster.name: required" in err.decode()


def test_production_modules_do_not_import_the_simulator() -> None:
    code = (
        "import sys, snat_exporter.cli, snat_exporter.config, snat_exporter.server\n"
        "loaded = [m for m in sys.modules if m.startswith('snat_exporter.simulator')]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=DEADLINE)
