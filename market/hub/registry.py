"""The market node's package registry: payloads (Docker archives, WASM modules) stored by SHA3-224.

A provider verifies every package it downloads against the SHA3-224 digest named in the demand
(``hash:sha3:<hex>:<url>``), so the digest is the package's only name here: files live under
``blobs/<hex>``, are written to a temporary file first and renamed into place once their digest is
known, and never change afterwards. An upload whose digest differs from the one the uploader expected
is refused and leaves nothing behind; uploading bytes that are already stored changes nothing.

A small SQLite index beside the files keeps what the bytes cannot say: the uploaded file's name, when
it arrived, and *tags* (``golem/busybox:latest``) that yapapi's ``vm.repo(image_tag=...)`` resolves.
The files remain the truth for what is stored: a package is there when its blob is there.

Nothing is created on disk until the first upload, so a market node that never stores a package
leaves no trace in its data directory. This module is the domain ring: the HTTP edge is
:mod:`market.hub.registry_api`, which also decides who may upload (see :func:`check_upload_allowed`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import os
import re
import secrets
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import IO

from market.core.clock import Clock, SystemClock, rfc3339
from market.core.errors import GolemError
from market.core.storage import open_database

log = logging.getLogger(__name__)

WRITE_BATCH_BYTES = 1024 * 1024
"""Received bytes are written (and hashed) in a worker thread in batches of about this size."""

DIGEST_HEX_LENGTH = 56
"""Hex digits of a SHA3-224 digest."""

_DIGEST = re.compile(r"[0-9a-fA-F]{56}")
_TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,127}(:[A-Za-z0-9._-]{1,128})?")

MIGRATIONS = (
    """
    CREATE TABLE packages (
        hash TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        name TEXT,
        uploaded_at TEXT NOT NULL
    );
    CREATE TABLE tags (
        tag TEXT PRIMARY KEY,
        hash TEXT NOT NULL REFERENCES packages(hash),
        tagged_at TEXT NOT NULL
    );
    CREATE INDEX tags_by_hash ON tags(hash);
    """,
)


# --- errors -----------------------------------------------------------------------------------------


class RegistryError(GolemError):
    """Root of the package registry's errors."""


class InvalidHashError(RegistryError):
    """A text that should be a SHA3-224 hex digest is not one."""


class InvalidTagError(RegistryError):
    """A tag does not have the ``name[:version]`` form the registry accepts."""


class PackageNotFoundError(RegistryError):
    """No stored package has that digest, or no tag has that name."""


class HashMismatchError(RegistryError):
    """The uploaded bytes do not hash to the digest the uploader said they would."""


class EmptyPackageError(RegistryError):
    """An upload carried no bytes."""


class PackageTooLargeError(RegistryError):
    """An upload is (or declares to be) larger than the registry's size limit."""


class CredentialsRequiredError(RegistryError):
    """An upload came without the token the registry requires."""


class UploadForbiddenError(RegistryError):
    """An upload came with a wrong token, or from another host while no token is configured."""


# --- pure helpers -----------------------------------------------------------------------------------


def parse_digest(text: str) -> str:
    """``text`` as a lower-case SHA3-224 hex digest; :class:`InvalidHashError` if it is not one."""
    if not _DIGEST.fullmatch(text):
        raise InvalidHashError(
            f"not a SHA3-224 digest: {text[:80]!r} (expected {DIGEST_HEX_LENGTH} hex digits)"
        )
    return text.lower()


def parse_tag(text: str) -> str:
    """``text`` if it is a valid tag (``name[:version]``, e.g. ``golem/busybox:1``)."""
    if not _TAG.fullmatch(text):
        raise InvalidTagError(
            f"not a valid tag: {text[:80]!r} (expected name[:version] of letters, digits and ._/-)"
        )
    return text


def check_upload_allowed(
    configured_token: str | None, presented_token: str | None, from_loopback: bool
) -> None:
    """Decide whether an upload may proceed; raise why not.

    With a token configured, every upload must present it, loopback ones included (a reverse proxy
    on the same host would otherwise make every client look local). Without one, only uploads from
    this host are accepted: a fresh node cannot be filled by strangers, and a local developer needs
    no setup.
    """
    if configured_token:
        if presented_token is None:
            raise CredentialsRequiredError(
                "this registry requires an upload token: send 'Authorization: Bearer <token>'"
            )
        if not hmac.compare_digest(presented_token.encode(), configured_token.encode()):
            raise UploadForbiddenError("the upload token is wrong")
        return
    if not from_loopback:
        raise UploadForbiddenError(
            "uploads from other hosts need an upload token; configure GOLEM_MARKET_UPLOAD_TOKEN on the "
            "market node"
        )


# --- the store --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredPackage:
    """A package in the registry."""

    digest: str
    size: int
    path: Path
    name: str | None = None
    uploaded_at: datetime | None = None
    tags: tuple[str, ...] = ()


class PackageRegistry:
    """Packages stored under ``root``, named by their SHA3-224 digest; see the module docstring.

    Reads are cheap metadata calls and run on the caller's thread; bulk writes and hashing run in a
    worker thread (:class:`Upload`).
    """

    def __init__(self, root: Path, *, max_package_bytes: int, clock: Clock | None = None) -> None:
        self.root = root
        self.max_package_bytes = max_package_bytes
        self.clock = clock or SystemClock()
        self._db: sqlite3.Connection | None = None

    @property
    def blobs(self) -> Path:
        return self.root / "blobs"

    @property
    def incoming(self) -> Path:
        return self.root / "incoming"

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    # -- reading -------------------------------------------------------------------------------------

    def get(self, digest: str) -> StoredPackage:
        """The stored package with ``digest``; :class:`PackageNotFoundError` if there is none."""
        digest = parse_digest(digest)
        path = self.blobs / digest
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise PackageNotFoundError(f"no package with SHA3-224 {digest}") from None
        name, uploaded_at, tags = None, None, ()
        if self._index_exists():
            db = self._index()
            row = db.execute("SELECT name, uploaded_at FROM packages WHERE hash = ?", (digest,)).fetchone()
            if row is not None:
                name, uploaded_at = row["name"], datetime.fromisoformat(row["uploaded_at"])
            tags = tuple(
                r["tag"] for r in db.execute("SELECT tag FROM tags WHERE hash = ? ORDER BY tag", (digest,))
            )
        return StoredPackage(digest, size, path, name, uploaded_at, tags)

    def resolve_tag(self, tag: str) -> StoredPackage:
        """The package ``tag`` points at; :class:`PackageNotFoundError` if the tag is unknown."""
        tag = parse_tag(tag)
        row = None
        if self._index_exists():
            row = self._index().execute("SELECT hash FROM tags WHERE tag = ?", (tag,)).fetchone()
        if row is None:
            raise PackageNotFoundError(f"no package is tagged {tag!r}")
        return self.get(row["hash"])

    def list(self) -> list[StoredPackage]:
        """Every stored package, in upload order."""
        if not self.blobs.is_dir():
            return []
        known: list[str] = []
        if self._index_exists():
            known = [r["hash"] for r in self._index().execute("SELECT hash FROM packages ORDER BY rowid")]
        on_disk = {p.name for p in self.blobs.iterdir() if _DIGEST.fullmatch(p.name)}
        # A blob renamed into place just before a crash has no index row; it is still stored.
        ordered = [d for d in known if d in on_disk] + sorted(on_disk - set(known))
        packages = []
        for digest in ordered:
            with contextlib.suppress(PackageNotFoundError):
                packages.append(self.get(digest))
        return packages

    # -- writing -------------------------------------------------------------------------------------

    def begin_upload(
        self,
        *,
        expected_digest: str | None = None,
        declared_size: int | None = None,
        name: str | None = None,
        tags: tuple[str, ...] = (),
    ) -> Upload:
        """Start storing a package; feed it with :meth:`Upload.write`, then :meth:`Upload.finish`.

        Everything that can be judged before the first byte is judged here (digest and tag syntax,
        the declared size), so a doomed upload is refused before its body is read.
        """
        expected = parse_digest(expected_digest) if expected_digest is not None else None
        checked_tags = tuple(dict.fromkeys(parse_tag(t) for t in tags))
        if declared_size is not None and declared_size > self.max_package_bytes:
            raise PackageTooLargeError(
                f"the package is {declared_size} bytes; "
                f"this registry accepts at most {self.max_package_bytes}"
            )
        self._prepare_folders()
        return Upload(self, expected, name, checked_tags)

    def _store(
        self, temp: Path, digest: str, size: int, name: str | None, tags: tuple[str, ...]
    ) -> tuple[StoredPackage, bool]:
        target = self.blobs / digest
        created = not target.exists()
        if created:
            os.replace(temp, target)
            log.info("stored package %s (%d bytes)", digest, size)
        else:
            temp.unlink(missing_ok=True)
        now = rfc3339(self.clock.now())
        db = self._index()
        with _transaction(db):
            db.execute(
                "INSERT OR IGNORE INTO packages (hash, size, name, uploaded_at) VALUES (?, ?, ?, ?)",
                (digest, size, name, now),
            )
            for tag in tags:
                db.execute(
                    "INSERT INTO tags (tag, hash, tagged_at) VALUES (?, ?, ?) "
                    "ON CONFLICT(tag) DO UPDATE SET hash = excluded.hash, tagged_at = excluded.tagged_at",
                    (tag, digest, now),
                )
        return self.get(digest), created

    def _prepare_folders(self) -> None:
        if self.incoming.is_dir():
            return
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.incoming.mkdir(parents=True, exist_ok=True)

    def _index_exists(self) -> bool:
        return self._db is not None or (self.root / "index.db").exists()

    def _index(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = open_database(self.root / "index.db", MIGRATIONS)
        return self._db


class Upload:
    """One package being received: bytes go to a temporary file while their digest is computed.

    Use as ``async with registry.begin_upload(...) as upload:``; leaving the block without
    :meth:`finish` (an error, a dropped connection) removes the temporary file.
    """

    def __init__(
        self, registry: PackageRegistry, expected: str | None, name: str | None, tags: tuple[str, ...]
    ) -> None:
        self._registry = registry
        self._expected = expected
        self._name = name
        self._tags = tags
        self._hasher = hashlib.sha3_224()
        self.size = 0
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._path = registry.incoming / f"{secrets.token_hex(8)}.part"
        self._file: IO[bytes] | None = self._path.open("xb")

    async def write(self, chunk: bytes) -> None:
        """Append ``chunk``; :class:`PackageTooLargeError` once the total passes the limit."""
        if self._file is None:
            raise RuntimeError("upload already finished")
        self.size += len(chunk)
        if self.size > self._registry.max_package_bytes:
            raise PackageTooLargeError(
                "the package is larger than this registry's limit of "
                f"{self._registry.max_package_bytes} bytes"
            )
        # Sockets deliver small pieces; one thread hop per megabyte keeps the loop free and cheap.
        self._pending.append(chunk)
        self._pending_bytes += len(chunk)
        if self._pending_bytes >= WRITE_BATCH_BYTES:
            await self._flush_pending(self._file)

    async def _flush_pending(self, file: IO[bytes]) -> None:
        pending, self._pending, self._pending_bytes = self._pending, [], 0
        if pending:
            await asyncio.to_thread(self._write, file, pending)

    def _write(self, file: IO[bytes], chunks: list[bytes]) -> None:
        for chunk in chunks:
            file.write(chunk)
            self._hasher.update(chunk)

    async def finish(self) -> tuple[StoredPackage, bool]:
        """Check the digest and put the package in place: ``(package, created)``.

        ``created`` is false when the registry already held these bytes (the upload changed nothing).
        """
        if self._file is None:
            raise RuntimeError("upload already finished")
        file, self._file = self._file, None
        try:
            await self._flush_pending(file)
        finally:
            await asyncio.to_thread(_flush_and_close, file)
        digest = self._hasher.hexdigest()
        try:
            if self.size == 0:
                raise EmptyPackageError("the upload carried no bytes")
            if self._expected is not None and digest != self._expected:
                raise HashMismatchError(
                    f"the uploaded bytes hash to {digest}, not to the expected {self._expected}; "
                    "nothing was stored"
                )
            return self._registry._store(self._path, digest, self.size, self._name, self._tags)
        finally:
            self._path.unlink(missing_ok=True)

    def abort(self) -> None:
        """Drop what was received so far."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self._path.unlink(missing_ok=True)

    async def __aenter__(self) -> Upload:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.abort()


def _flush_and_close(file: IO[bytes]) -> None:
    # The blob is renamed into place next; fsync first, so a crash cannot leave a named blob whose
    # bytes never reached the disk.
    try:
        file.flush()
        os.fsync(file.fileno())
    finally:
        file.close()


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
