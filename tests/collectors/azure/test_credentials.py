"""Credential failures keep their cause, and the ARM token audience can be set (issue 15, item 10).

The failing credential is azure-identity's real DefaultAzureCredential, narrowed by AZURE_TOKEN_CREDENTIALS to
workload identity (so nothing reaches for the network), whose federated token file does not exist.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from azure.core.credentials import AccessToken, AccessTokenInfo
from azure.core.exceptions import ClientAuthenticationError

from snat_exporter.cli import main
from snat_exporter.collectors.azure import client as azure_client
from snat_exporter.collectors.azure.errors import describe
from snat_exporter.config import load_config
from snat_exporter.server import Exporter
from snat_exporter.simulator import Simulator, exporter_settings, load_scenario
from tests.conftest import FakeClock

MISSING = "/nonexistent/azure-identity-token"


@pytest.fixture
def workload_identity_without_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_TOKEN_CREDENTIALS", "WorkloadIdentityCredential")
    monkeypatch.setenv("AZURE_TENANT_ID", "66666666-7777-8888-9999-000000000000")
    monkeypatch.setenv("AZURE_CLIENT_ID", "11111111-2222-3333-4444-555555555555")
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", MISSING)


async def test_the_collector_error_says_which_credential_failed_and_why(
    clock: FakeClock, workload_identity_without_token: None
) -> None:
    """It said only "DefaultAzureCredential failed to retrieve a token from the included credentials"."""
    scenario = load_scenario("exhaustion")
    async with Simulator(scenario, clock=clock) as sim:
        settings = {**exporter_settings(scenario, sim.url), "azure.credential": "default", "azure.timeout": "5s"}
        exporter = Exporter(load_config(None, environ={}, overrides=settings), clock=clock)
        await exporter.start(host="127.0.0.1", port=0, background=False)
        try:
            assert not await exporter.runners["azure"].run_once()
            shown = exporter.store.get("azure").last_error or ""
        finally:
            await exporter.stop()
    assert shown.startswith("auth:"), shown
    assert "WorkloadIdentityCredential" in shown and MISSING in shown, shown
    assert "\n" not in shown and "To mitigate" not in shown


def test_diagnose_says_why_the_credential_failed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], workload_identity_without_token: None
) -> None:
    config = tmp_path / "exporter.yaml"
    config.write_text(
        "azure:\n  enabled: true\n  subscription_id: 00000000-0000-0000-0000-000000000001\n"
        "  arm_endpoint: http://127.0.0.1:9\n  credential: default\n  timeout: 5s\n"
        "  cluster: {resource_group: rg, name: aks}\n"
    )
    assert main(["diagnose", "--config", str(config)]) != 0
    err = capsys.readouterr().err
    said = [line for line in err.splitlines() if line.startswith("error: cannot read Azure")]
    assert len(said) == 1 and "WorkloadIdentityCredential" in said[0] and MISSING in said[0], err


def test_an_aadsts_cause_is_kept_and_its_secrets_scrubbed() -> None:
    secret = "Qx9~not-the-env-secret_77"
    exc = ClientAuthenticationError(
        "DefaultAzureCredential failed to retrieve a token from the included credentials.\n"
        "Attempted credentials:\n"
        "\tEnvironmentCredential: Authentication failed: AADSTS7000215: Invalid client secret provided. "
        f'Request body was {{"client_secret": "{secret}"}}\r\n'
        "Trace ID: 0b5c1d2e-0000-0000-0000-000000000000\n"
        "To mitigate this issue, please refer to the troubleshooting guidelines here at "
        "https://aka.ms/azsdk/python/identity/defaultazurecredential/troubleshoot."
    )
    try:
        raise exc from OSError("certificate verify failed: unable to get local issuer certificate")
    except ClientAuthenticationError as raised:
        text = describe(raised)
    assert "AADSTS7000215" in text and "Trace ID" in text
    assert "caused by OSError: certificate verify failed" in text
    assert secret not in text and "To mitigate" not in text and "\n" not in text


class RecordingCredential:
    def __init__(self) -> None:
        self.scopes: list[str] = []

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.extend(scopes)
        return AccessToken("token", int(time.time()) + 3600)

    async def get_token_info(self, *scopes: str, **kwargs: Any) -> AccessTokenInfo:
        token = await self.get_token(*scopes)
        return AccessTokenInfo(token.token, token.expires_on)

    async def close(self) -> None:
        pass


@pytest.mark.parametrize("audience", [None, "https://arm-proxy.example.net/", "https://custom.cloud/.default"])
async def test_the_arm_token_audience_can_be_set(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch, audience: str | None
) -> None:
    credential = RecordingCredential()
    monkeypatch.setattr(azure_client, "make_credential", lambda config: credential)
    scenario = load_scenario("exhaustion")
    async with Simulator(scenario, clock=clock) as sim:
        settings = {
            **exporter_settings(scenario, sim.url),
            "azure.credential": "environment",
            "azure.batch": "never",  # ARM only: the data plane has its own audience (batch_audience)
            **({"azure.arm_audience": audience} if audience else {}),
        }
        exporter = Exporter(load_config(None, environ={}, overrides=settings), clock=clock)
        await exporter.start(host="127.0.0.1", port=0, background=False)
        try:
            assert await exporter.runners["azure"].run_once(), exporter.store.get("azure").last_error
        finally:
            await exporter.stop()
    expected = {
        None: sim.url.rstrip("/") + "/.default",
        "https://arm-proxy.example.net/": "https://arm-proxy.example.net/.default",
        "https://custom.cloud/.default": "https://custom.cloud/.default",
    }[audience]
    assert credential.scopes and set(credential.scopes) == {expected}, credential.scopes


def test_a_bad_arm_audience_exits_2_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "/dev/null", "--set", "azure.arm_audience=not a url"]) == 2
    assert "azure.arm_audience" in capsys.readouterr().err
