"""Config layering, SQLite migrations, state-machine support, ids, clock helpers."""

from __future__ import annotations

import logging
import sqlite3
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path

import pytest
from pydantic import BaseModel

from market.core.clock import FakeClock, from_millis, rfc3339, to_millis
from market.core.config import load_config
from market.core.errors import ConfigError, InvalidTransition, StorageError
from market.core.ids import new_id, node_id
from market.core.logging import CorrelationFilter, correlated
from market.core.statemachine import terminal_states, transition
from market.core.storage import open_database
from market.core.wire import RequestModel, WireModel


class Settings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 7470
    rate: float = 1.0


def test_config_layers_in_order(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text('[market]\nport = 8000\nhost = "0.0.0.0"\nrate = 2.0\n')
    env = {"GOLEM_MARKET_PORT": "9000", "GOLEM_MARKET_RATE": "3.5"}
    config = load_config(
        Settings,
        toml_path=toml,
        section="market",
        env_prefix="GOLEM_MARKET_",
        environ=env,
        overrides={"rate": 4.0, "host": None},
    )
    assert config == Settings(host="0.0.0.0", port=9000, rate=4.0)
    assert load_config(Settings, environ={}) == Settings()


@pytest.mark.parametrize(
    ("toml", "env", "match"),
    [
        ("[market]\nport = 'x'\n", {}, "port"),
        ("[market]\nbogus = 1\n", {}, "unknown setting"),
        ("not toml [", {}, "cannot read"),
        ("", {"GOLEM_MARKET_PORT": "eighty"}, "port"),
    ],
)
def test_config_errors_are_clear(tmp_path: Path, toml: str, env: dict[str, str], match: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=match):
        load_config(Settings, toml_path=path, section="market", env_prefix="GOLEM_MARKET_", environ=env)


def test_config_tables_and_lists_from_the_environment_as_json() -> None:
    class Nested(BaseModel):
        prices: dict[str, float] = {}
        names: list[str] = []

    env = {"X_PRICES": '{"vm": 1.5}', "X_NAMES": '["a", "b"]'}
    assert load_config(Nested, env_prefix="X_", environ=env) == Nested(prices={"vm": 1.5}, names=["a", "b"])
    with pytest.raises(ConfigError, match="X_PRICES looks like JSON"):
        load_config(Nested, env_prefix="X_", environ={"X_PRICES": "{vm: 1}"})


def test_config_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(Settings, toml_path=tmp_path / "none.toml")


MIGRATIONS = [
    "CREATE TABLE a (id INTEGER PRIMARY KEY, v TEXT)",
    "ALTER TABLE a ADD COLUMN w TEXT; CREATE INDEX a_w ON a(w)",
]


def test_migrations_apply_once_and_resume(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    conn = open_database(path, MIGRATIONS[:1])
    conn.execute("INSERT INTO a (v) VALUES ('kept')")
    conn.close()
    conn = open_database(path, MIGRATIONS)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
    assert tuple(conn.execute("SELECT v, w FROM a").fetchone()) == ("kept", None)
    conn.close()
    with pytest.raises(StorageError, match="newer"):
        open_database(path, MIGRATIONS[:1])


def test_failed_migration_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    open_database(path, MIGRATIONS[:1]).close()
    with pytest.raises(StorageError):
        open_database(path, [*MIGRATIONS[:1], "CREATE TABLE b (x); CREATE TABLE a (y)"])
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    assert conn.execute("SELECT name FROM sqlite_master WHERE name='b'").fetchone() is None


class Light(Enum):
    RED = "red"
    GREEN = "green"
    OFF = "off"


TABLE = {
    Light.RED: frozenset({Light.GREEN, Light.OFF}),
    Light.GREEN: frozenset({Light.RED}),
    Light.OFF: frozenset(),
}


def test_transition_table() -> None:
    assert transition("light", TABLE, Light.RED, Light.GREEN) is Light.GREEN
    with pytest.raises(InvalidTransition, match="light cannot go from off to red"):
        transition("light", TABLE, Light.OFF, Light.RED)
    assert terminal_states(TABLE) == {Light.OFF}


def test_ids_and_time() -> None:
    assert (
        node_id("0xABCDEF0123456789abcdef0123456789ABCDEF01") == "0xabcdef0123456789abcdef0123456789abcdef01"
    )
    for bad in (
        "0x123",
        "abcdef0123456789abcdef0123456789abcdef0123",
        "0xZZcdef0123456789abcdef0123456789abcdef01",
    ):
        with pytest.raises(ValueError):
            node_id(bad)
    assert len(new_id()) == 32 and new_id() != new_id()
    moment = datetime(2026, 11, 21, 12, 0, 0, 123000, tzinfo=UTC)
    assert from_millis(to_millis(moment)) == moment
    assert rfc3339(moment) == "2026-11-21T12:00:00.123000Z"
    with pytest.raises(ValueError):
        rfc3339(datetime(2026, 1, 1))
    clock = FakeClock(moment)
    clock.advance(1.5)
    assert (clock.now() - moment).total_seconds() == 1.5


class Thing(WireModel):
    agreement_id: str
    valid_to: int | None = None


class ThingRequest(RequestModel):
    agreement_id: str


def test_wire_models() -> None:
    thing = Thing.model_validate({"agreementId": "a", "extra": 1})
    assert thing.to_wire() == {"agreementId": "a"}
    assert Thing(agreement_id="a").agreement_id == "a"
    with pytest.raises(ValueError, match="extra"):
        ThingRequest.model_validate({"agreementId": "a", "extra": 1})


def test_correlation_ids_reach_log_records(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.correlation")
    logger.addFilter(CorrelationFilter())
    with caplog.at_level(logging.INFO, logger="test.correlation"), correlated("flow-42"):
        logger.info("inside")
    logger.info("outside")
    assert [getattr(r, "correlation_id", None) for r in caplog.records][:1] == ["flow-42"]
