"""SQLite helpers: open a database with sane settings and bring its schema up to date.

Schemas are a list of migration scripts; the database's ``user_version`` records how many have
run, so opening an old file applies only the new ones, each in its own transaction.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path

from market.core.errors import StorageError


def open_database(path: Path | str, migrations: Sequence[str]) -> sqlite3.Connection:
    """Open (creating if needed) the SQLite file at ``path`` and apply pending ``migrations``.

    WAL journaling lets readers run beside the writer, and ``synchronous=NORMAL`` is durable across
    process crashes in WAL mode, which is what "nothing owed is lost" needs.
    """
    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=5000")
        migrate(conn, migrations)
    except sqlite3.Error as exc:
        raise StorageError(f"cannot open database {path}: {exc}") from exc
    return conn


def migrate(conn: sqlite3.Connection, migrations: Sequence[str]) -> int:
    """Apply the migrations the database has not seen; return its new schema version."""
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version > len(migrations):
        raise StorageError(
            f"database schema version {version} is newer than this program knows ({len(migrations)})"
        )
    for number, script in enumerate(migrations[version:], start=version + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(script):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version={number}")
            conn.execute("COMMIT")
        except sqlite3.Error:
            conn.execute("ROLLBACK")
            raise
    return len(migrations)


def _statements(script: str) -> list[str]:
    # executescript() would commit our transaction; split on ';' instead (schemas hold no literals
    # with semicolons).
    return [part.strip() for part in script.split(";") if part.strip()]


class Transactions:
    """Atomic blocks on one connection (opened in autocommit mode by :func:`open_database`).

    ``with transactions(): ...`` runs the block in ``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` if
    it raises); a block opened inside another joins the outer transaction, so a method that needs
    atomicity can be called both on its own and from a larger unit of work.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._depth = 0

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self.conn.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            self.conn.execute("COMMIT")
        finally:
            self._depth = 0
