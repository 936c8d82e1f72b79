"""The ``golem`` command as a user drives it (click's runner, real files)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from market.cli import _load_commands, golem

_load_commands()


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("GOLEM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("GOLEM_KEYSTORE_PASSWORD", raising=False)
    return CliRunner()


def test_identity_create_and_show(runner: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GOLEM_KEYSTORE_PASSWORD", "pw")
    created = runner.invoke(golem, ["identity", "create", "--json", "--light-kdf"])
    assert created.exit_code == 0, created.output
    info = json.loads(created.output)
    assert info["nodeId"].startswith("0x") and len(info["nodeId"]) == 42
    assert info["keystore"] == str(tmp_path / "data" / "identity" / "keystore.json")
    shown = runner.invoke(golem, ["identity", "show", "--json"])
    assert json.loads(shown.output) == info
    again = runner.invoke(golem, ["identity", "create", "--light-kdf"])
    assert again.exit_code == 1 and "already exists" in again.output
    assert json.loads(runner.invoke(golem, ["identity", "show", "--json"]).output) == info


def test_identity_errors_are_clear(runner: CliRunner, tmp_path: Path) -> None:
    missing = runner.invoke(golem, ["identity", "show"])
    assert missing.exit_code == 1 and "golem identity create" in missing.output
    no_password = runner.invoke(golem, ["identity", "create"])
    assert no_password.exit_code == 1 and "GOLEM_KEYSTORE_PASSWORD" in no_password.output
    pw = tmp_path / "pw"
    pw.write_text("from-file\n")
    keystore = tmp_path / "k.json"
    made = runner.invoke(
        golem, ["identity", "create", "--keystore", str(keystore), "--password-file", str(pw), "--light-kdf"]
    )
    assert made.exit_code == 0 and keystore.exists()


def test_market_serve_show_config_layers(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "golem.toml"
    config.write_text("[market]\nport = 8000\nmax_subscriptions_per_node = 7\n")
    monkeypatch.setenv("GOLEM_MARKET_PORT", "9000")
    result = runner.invoke(
        golem, ["market", "serve", "--config", str(config), "--host", "127.0.0.2", "--show-config"]
    )
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert (shown["host"], shown["port"], shown["max_subscriptions_per_node"]) == ("127.0.0.2", 9000, 7)


def test_market_serve_bad_config(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOLEM_MARKET_PORT", "not-a-port")
    result = runner.invoke(golem, ["market", "serve", "--show-config"])
    assert result.exit_code == 1 and "port" in result.output


def test_help_everywhere(runner: CliRunner) -> None:
    for args in (
        ["--help"],
        ["market", "serve", "--help"],
        ["market", "demo", "--help"],
        ["identity", "--help"],
    ):
        result = runner.invoke(golem, args)
        assert result.exit_code == 0 and "Usage:" in result.output, args
