"""App keys: the bearer tokens a yapapi script sends as ``YAGNA_APPKEY``.

A key is 32 random hex digits shown once at creation; only its SHA-256 is stored, with a unique
name and the node id it speaks for. :class:`AppKeyStore` works on the daemon's SQLite file, so the
CLI can create and list keys while no daemon runs.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime

from market.core.errors import GolemError

APP_KEYS_SCHEMA = """
CREATE TABLE app_keys (
    name TEXT PRIMARY KEY,
    key_hash TEXT NOT NULL UNIQUE,
    identity TEXT NOT NULL,
    created TEXT NOT NULL
)
"""
"""Migration creating the ``app_keys`` table (part of the daemon's migration list)."""


class AppKeyError(GolemError):
    """An app key cannot be created (name taken, empty name)."""


@dataclass(frozen=True)
class AppKey:
    """A stored app key, without its secret."""

    name: str
    identity: str
    created: datetime


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class AppKeyStore:
    """Create, list and verify app keys in the daemon's database."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def create(self, name: str, identity: str) -> tuple[AppKey, str]:
        """Store a new key named ``name``; return it and its secret (shown once, never stored)."""
        if not name.strip():
            raise AppKeyError("an app key needs a non-empty name")
        secret = secrets.token_hex(16)
        key = AppKey(name=name, identity=identity, created=datetime.now(UTC))
        try:
            self._conn.execute(
                "INSERT INTO app_keys (name, key_hash, identity, created) VALUES (?, ?, ?, ?)",
                (name, hash_key(secret), identity, key.created.isoformat()),
            )
        except sqlite3.IntegrityError as exc:
            raise AppKeyError(f"an app key named {name!r} already exists") from exc
        return key, secret

    def list(self) -> list[AppKey]:
        rows = self._conn.execute("SELECT name, identity, created FROM app_keys ORDER BY created").fetchall()
        return [_key(row) for row in rows]

    def verify(self, secret: str) -> AppKey | None:
        """The key whose secret this is, or ``None``."""
        row = self._conn.execute(
            "SELECT name, identity, created FROM app_keys WHERE key_hash = ?", (hash_key(secret),)
        ).fetchone()
        return None if row is None else _key(row)


def _key(row: sqlite3.Row) -> AppKey:
    return AppKey(name=row["name"], identity=row["identity"], created=datetime.fromisoformat(row["created"]))
