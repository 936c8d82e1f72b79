"""``golem requestor app-key``: keys are made and listed on the data dir's SQLite, no daemon needed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from market.core.identity import LIGHT_KDF_WORK, create_keystore
from requestor.appkeys import AppKeyStore
from requestor.cli import requestor
from requestor.config import RequestorConfig
from requestor.daemon import open_store


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GOLEM_KEYSTORE_PASSWORD", "secret")
    directory = tmp_path / "requestor"
    # A light-KDF keystore made up front keeps the test fast; the CLI would make a full-strength one.
    create_keystore(directory / "keystore.json", "secret", kdf_work=LIGHT_KDF_WORK)
    return directory


def test_app_key_create_and_list(data_dir: Path) -> None:
    runner = CliRunner()
    created = runner.invoke(requestor, ["app-key", "create", "alice", "--data-dir", str(data_dir), "--json"])
    assert created.exit_code == 0, created.output
    answer = json.loads(created.output)
    assert answer["name"] == "alice" and len(answer["key"]) == 32

    plain = runner.invoke(requestor, ["app-key", "create", "bob", "--data-dir", str(data_dir)])
    assert plain.exit_code == 0 and len(plain.output.strip()) == 32

    duplicate = runner.invoke(requestor, ["app-key", "create", "alice", "--data-dir", str(data_dir)])
    assert duplicate.exit_code != 0 and "already exists" in duplicate.output

    listed = runner.invoke(requestor, ["app-key", "list", "--data-dir", str(data_dir), "--json"])
    assert listed.exit_code == 0
    rows = json.loads(listed.output)
    assert [r["name"] for r in rows] == ["alice", "bob"]
    assert rows[0]["identity"] == answer["identity"]
    assert answer["key"] not in listed.output

    # What the daemon checks: the secret verifies, only its hash is stored.
    conn = open_store(RequestorConfig(data_dir=data_dir))
    store = AppKeyStore(conn)
    key = store.verify(answer["key"])
    assert key is not None and key.name == "alice"
    assert store.verify("0" * 32) is None
    stored = [row[0] for row in conn.execute("SELECT key_hash FROM app_keys")]
    assert answer["key"] not in stored
    conn.close()


def test_show_config(data_dir: Path) -> None:
    result = CliRunner().invoke(
        requestor, ["serve", "--data-dir", str(data_dir), "--port", "0", "--show-config"]
    )
    assert result.exit_code == 0, result.output
    config = json.loads(result.output)
    assert config["port"] == 0 and config["data_dir"] == str(data_dir)
    assert config["market_url"] == "ws://127.0.0.1:7470/ws"
