"""Secrets never leave the process: a session full of faults with a client secret in the environment, a failing
credential whose errors echo the secret and a token, and Azure answers that echo a bearer token and a JWT; then
every log line (rendered as the exporter writes them), the landing page, /metrics and every error message the
exporter keeps are searched for the secret values."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from snat_exporter.collectors.azure import client as azure_client
from snat_exporter.config import load_config
from snat_exporter.server import Exporter
from snat_exporter.simulator import Fault, Simulator, exporter_settings, load_scenario
from snat_exporter.snapshot import Snapshot
from tests.conftest import FakeClock
from tests.reliability.harness import captured_logs, scrape
from tests.reliability.test_faults import FAKE_JWT, FAKE_SECRET, SwitchableCredential

BEARER = "sk_live_Bearer-Token-0f9e8d7c6b5a"
# Secrets that are in no environment variable: only the patterns can catch them (issue 15, item 6).
OTHER = "Xy7~other-secret.value_99"
BASIC = "YWxpY2U6czNjcjN0LXBhc3N3b3Jk"  # base64 of alice:s3cr3t-password
SECRETS = (FAKE_SECRET, FAKE_JWT, BEARER, OTHER, BASIC)

# The shapes a secret reaches a log line or an error message in: JSON bodies (as a token endpoint answers, also
# escaped inside another string), form bodies (URL-encoded too), camelCase keys, an Authorization header of any
# scheme, a SAS URL's signature, bare secret= / token= pairs.
SHAPES = [
    f'{{"client_secret": "{OTHER}"}}',
    f'{{"refresh_token": "{OTHER}", "token_type": "Bearer"}}',
    f'{{\\"access_token\\": \\"{OTHER}\\"}}',
    f"{{'password': 'two {OTHER} words'}}",
    f"Authorization: Basic {BASIC}",
    f"grant_type=client_credentials&client_secret%3D{OTHER}%26scope%3Dx",
    f"clientSecret={OTHER}",
    f"https://acct.blob.core.windows.net/c/b?sv=2022-11-02&se=2026-12-01&sig={OTHER}",
    f"secret={OTHER}",
    f"token={OTHER}",
]

# Faults whose error bodies echo credentials back, as a misbehaving proxy or service might.
ECHOING_FAULTS = [
    Fault("status", status=500, message=f"upstream rejected Authorization: Bearer {BEARER}"),
    Fault("status", status=429, message=f"throttled token {FAKE_JWT}"),
    Fault("auth", message=f"InvalidAuthenticationToken: {FAKE_JWT} client_secret={FAKE_SECRET}"),
    Fault("metric_error", metric="UsedSnatPorts", message=f"cannot read with access_token={BEARER} ({FAKE_SECRET})"),
    Fault("status", status=403, operation="batch", message=f"no Monitoring Reader for Bearer {BEARER}"),
    *(Fault("metric_error", metric="UsedSnatPorts", message=f"upstream said {shape}") for shape in SHAPES),
]


async def test_a_session_full_of_faults_leaks_no_secret(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AZURE_CLIENT_SECRET", FAKE_SECRET)
    monkeypatch.setenv("AZURE_CLIENT_ID", "11111111-2222-3333-4444-555555555555")
    monkeypatch.setenv("AZURE_TENANT_ID", "66666666-7777-8888-9999-000000000000")
    credential = SwitchableCredential()
    monkeypatch.setattr(azure_client, "make_credential", lambda config: credential)
    scenario = load_scenario("exhaustion")
    sim = Simulator(scenario, clock=clock)
    sim_url = await sim.start("127.0.0.1", 0)
    settings = {
        **exporter_settings(scenario, sim_url),
        "azure.credential": "environment",
        "azure.timeout": "2s",
        "azure.retries": "0",  # a 429 fails its cycle at once as throttled, not as timeout on a loaded machine
        "azure.discovery_interval": "1m",  # rediscovery every run: the faults hit the ARM path too
    }
    seen: list[tuple[str, str]] = []
    with captured_logs() as logs:
        exporter = Exporter(load_config(None, environ={}, overrides=settings), clock=clock)
        url = await exporter.start(host="127.0.0.1", port=0, background=False)
        runner = exporter.runners["azure"]
        try:
            async with aiohttp.ClientSession() as session:
                assert await runner.run_once()
                steps: list[Fault | str] = [*ECHOING_FAULTS, "credential"]
                for step in steps:
                    sim.clear_faults()
                    credential.failing = step == "credential"
                    if isinstance(step, Fault):
                        sim.add_fault(step)
                    clock.advance(60)
                    await runner.run_once()
                    seen.append((f"{step} last_error", exporter.store.get("azure").last_error or ""))
                    seen.append((f"{step} /", (await scrape(session, url, "/")).text))
                    seen.append((f"{step} /metrics", (await scrape(session, url)).text))
                # The faults did happen (else this test proves nothing): each reason was counted.
                metrics = await scrape(session, url)
                for reason in ("http_5xx", "throttled", "auth"):
                    assert metrics.value("snat_exporter_collector_errors_total", collector="azure", reason=reason)
                assert metrics.value("snat_exporter_azure_metric_errors_total", metric="UsedSnatPorts")
        finally:
            await exporter.stop()
            await sim.stop()
    seen.append(("logs", logs.getvalue()))
    assert "collector run failed" in logs.getvalue()
    for where, text in seen:
        for secret in SECRETS:
            assert secret not in text, f"{secret[:12]}... leaked into {where}"


class EchoingCollector:
    """A collector whose failure message carries the client secret, as an SDK exception message might."""

    name = "azure"

    async def start(self) -> None:
        pass

    async def collect(self) -> Snapshot:
        from snat_exporter.collectors.base import CollectError

        raise CollectError("auth", f"AADSTS7000215: Invalid client secret provided: {FAKE_SECRET}")

    async def close(self) -> None:
        pass


async def test_the_landing_page_scrubs_error_messages_like_the_log_does(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The log formatter scrubs secrets; the landing page shows the same error text and must scrub it too."""
    monkeypatch.setenv("AZURE_CLIENT_SECRET", FAKE_SECRET)
    exporter = Exporter(load_config(None, environ={}), clock=clock, collectors=[EchoingCollector()])
    url = await exporter.start(host="127.0.0.1", port=0, background=False)
    try:
        assert not await exporter.runners["azure"].run_once()
        async with aiohttp.ClientSession() as session:
            page = (await scrape(session, url, "/")).text
        assert "AADSTS7000215" in page, "the error is shown..."
        assert FAKE_SECRET not in page, "...without the secret"
        assert FAKE_SECRET not in (exporter.store.get("azure").last_error or "")
    finally:
        await exporter.stop()


@pytest.mark.parametrize("shape", SHAPES)
async def test_every_shape_of_secret_is_scrubbed_from_the_log_and_the_landing_page(
    shape: str, clock: FakeClock, tmp_path: Path
) -> None:
    """As the message, as a field of the line, and as the error a collector reports (shown on /)."""
    import logging

    class Failing(EchoingCollector):
        async def collect(self) -> Snapshot:
            from snat_exporter.collectors.base import CollectError

            raise CollectError("auth", f"token request failed: {shape}")

    with captured_logs() as logs:
        logging.getLogger("snat_exporter.test").warning(shape, extra={"error": shape, "body": shape.encode()})
        exporter = Exporter(load_config(None, environ={}), clock=clock, collectors=[Failing()])
        url = await exporter.start(host="127.0.0.1", port=0, background=False)
        try:
            assert not await exporter.runners["azure"].run_once()
            async with aiohttp.ClientSession() as session:
                page = (await scrape(session, url, "/")).text
        finally:
            await exporter.stop()
    assert "token request failed" in page, "the error is shown..."
    for where, text in (("logs", logs.getvalue()), ("/", page)):
        for secret in (OTHER, BASIC):
            assert secret not in text, f"{secret[:8]}... of {shape!r} leaked into {where}"
