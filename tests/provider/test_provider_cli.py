"""``golem provider`` as a user drives it: presets, effective config, identity, status, run."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from market.cli import _load_commands, golem
from market.core.identity import LIGHT_KDF_WORK, PASSWORD_ENV
from market.hub.server import MarketNode, MarketNodeConfig
from provider.cli import ensure_identity
from provider.config import ProviderConfig
from tests.provider.conftest import DaemonFactory

_load_commands()


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("GOLEM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    return CliRunner()


def test_preset_create_list_update(runner: CliRunner, tmp_path: Path) -> None:
    empty = runner.invoke(golem, ["provider", "preset", "list"])
    assert empty.exit_code == 0 and "no presets" in empty.output
    created = runner.invoke(
        golem, ["provider", "preset", "create", "fast-vm", "--runtime", "vm", "--cpu-per-hour", "0.5"]
    )
    assert created.exit_code == 0, created.output
    duplicate = runner.invoke(golem, ["provider", "preset", "create", "fast-vm", "--runtime", "vm"])
    assert duplicate.exit_code == 1 and "already exists" in duplicate.output
    updated = runner.invoke(golem, ["provider", "preset", "update", "fast-vm", "--start-price", "0.01"])
    assert updated.exit_code == 0, updated.output
    listed = json.loads(runner.invoke(golem, ["provider", "preset", "list", "--json"]).output)
    assert listed == [
        {
            "name": "fast-vm",
            "runtime": "vm",
            "pricing": {"cpu_per_hour": "0.5", "duration_per_hour": "0.02", "start_price": "0.01"},
        }
    ]
    assert (tmp_path / "data" / "provider" / "presets.json").exists()
    bad = runner.invoke(golem, ["provider", "preset", "update", "nope", "--cpu-per-hour", "1"])
    assert bad.exit_code == 1 and "no preset" in bad.output


def test_show_config_layers_file_environment_and_flags(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "pd"
    data_dir.mkdir()
    (data_dir / "provider.toml").write_text('[provider]\nnode_name = "from-file"\nsubnet = "from-file"\n')
    monkeypatch.setenv("GOLEM_PROVIDER_SUBNET", "from-env")
    result = runner.invoke(
        golem, ["provider", "run", "--data-dir", str(data_dir), "--status-port", "0", "--show-config"]
    )
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert (shown["node_name"], shown["subnet"], shown["status_port"]) == ("from-file", "from-env", 0)
    assert shown["data_dir"] == str(data_dir)
    assert not (data_dir / "identity").exists()  # --show-config creates nothing

    bad = runner.invoke(golem, ["provider", "run", "--data-dir", str(data_dir), "--status-port", "99999"])
    assert bad.exit_code == 1 and "status_port" in bad.output


def test_identity_is_created_once_with_a_private_password_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    config = ProviderConfig(data_dir=tmp_path)
    identity, created = ensure_identity(config, kdf_work=LIGHT_KDF_WORK)
    assert created
    password_file = tmp_path / "identity" / "password"
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    again, created_again = ensure_identity(config, kdf_work=LIGHT_KDF_WORK)
    assert again.node_id == identity.node_id and not created_again
    password_file.unlink()
    with pytest.raises(Exception, match=PASSWORD_ENV):
        ensure_identity(config)


def test_identity_password_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "s3cret")
    config = ProviderConfig(data_dir=tmp_path)
    identity, _ = ensure_identity(config, kdf_work=LIGHT_KDF_WORK)
    assert not (tmp_path / "identity" / "password").exists()
    assert ensure_identity(config)[0].node_id == identity.node_id


async def test_status_reads_a_running_provider(runner: CliRunner, start_provider: DaemonFactory) -> None:
    provider = await start_provider()
    url = provider.status_url
    assert url is not None
    result = await asyncio.to_thread(runner.invoke, golem, ["provider", "status", "--url", url])
    assert result.exit_code == 0, result.output
    assert "provider-1" in result.output and "0/1 agreements active" in result.output
    assert result.output.count("offer ") == 2
    as_json = await asyncio.to_thread(runner.invoke, golem, ["provider", "status", "--url", url, "--json"])
    assert json.loads(as_json.output)["health"]["nodeId"] == provider.node_id
    down = runner.invoke(golem, ["provider", "status", "--url", "http://127.0.0.1:9/provider/v1"])
    assert down.exit_code == 1 and "cannot read" in down.output


async def test_run_starts_the_daemon_until_sigterm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real command in a subprocess: first run creates the identity, publishes, stops cleanly."""
    async with MarketNode(MarketNodeConfig(port=0)) as node:
        config = ProviderConfig(data_dir=tmp_path)
        env = dict(os.environ, GOLEM_KEYSTORE_PASSWORD="pw", GOLEM_DATA_DIR=str(tmp_path / "unused"))
        # A light keystore made in advance keeps the unlock fast; `run` would make a standard one.
        monkeypatch.setenv(PASSWORD_ENV, "pw")
        identity, _ = ensure_identity(config, kdf_work=LIGHT_KDF_WORK)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "from market.cli import main; main()",
            "provider", "run", "--market", node.ws_url, "--data-dir", str(tmp_path), "--status-port", "0",
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            lines = [(await asyncio.wait_for(proc.stdout.readline(), 20)).decode() for _ in range(3)]
            # First what it offers (runtime, resources, prices in the units they are set in), then
            # the daemon's own line.
            offers, line = lines[:2], lines[2]
            heads = ["offer vm (preset vm)", "offer wasmtime (preset wasmtime)"]
            assert [o.split(":")[0] for o in offers] == heads
            prices = "0.1 GLM/CPU-hour, 0.02 GLM/hour, start 0 GLM"
            assert all(" threads, " in o and prices in o for o in offers)
            assert identity.node_id in line and "status API http://127.0.0.1:" in line
            deadline = asyncio.get_running_loop().time() + 10
            while len(node.market.offers()) < 2:
                assert asyncio.get_running_loop().time() < deadline, "offers never published"
                await asyncio.sleep(0.05)
        finally:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 10)
        assert proc.returncode == 0


def test_run_refuses_a_missing_active_preset(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "pd"
    data_dir.mkdir()
    (data_dir / "provider.toml").write_text('[provider]\nactive_presets = ["ghost"]\n')
    monkeypatch.setenv(PASSWORD_ENV, "pw")
    ensure_identity(ProviderConfig(data_dir=data_dir), kdf_work=LIGHT_KDF_WORK)
    result = runner.invoke(golem, ["provider", "run", "--data-dir", str(data_dir), "--status-port", "0"])
    assert result.exit_code == 1 and "active preset 'ghost' does not exist" in result.output
