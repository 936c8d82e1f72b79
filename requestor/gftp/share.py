"""The requestor daemon's side of ``gftp://``: the files it shares with its providers.

:class:`FileShare` holds two tables: *published* files (token → a local file, read-only to
providers) and *receive slots* (token → the local path an upload lands at). It answers the
provider-side :class:`exeunits.gftp.RelayGftpResolver` over the market relay (protocol in
:mod:`exeunits.gftp`): serving windows of published files as binary frames, and taking uploads into
a temporary file beside the slot's path that is verified (size, sha3-224) and renamed into place only
when complete. Anything else (unknown or guessed tokens, uploads to published files, frames from
another node) is refused with a stable error code and changes nothing.

The ``gftp`` process yapapi starts reaches this object through the daemon's ``/gftp-api/v1``
sub-application (:mod:`requestor.gftp.api`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from exeunits.gftp import (
    CHUNK_BYTES,
    CODE_BAD_REQUEST,
    CODE_FORBIDDEN,
    CODE_INTEGRITY,
    CODE_NOT_FOUND,
    DOWNLOAD_CHANNEL,
    M_INFO,
    M_READ,
    M_UPLOAD_ABORT,
    M_UPLOAD_BEGIN,
    M_UPLOAD_END,
    M_UPLOAD_SYNC,
    MAX_READ_BYTES,
    UPLOAD_CHANNEL,
    FramePacer,
    GftpError,
    RelayGftpResolver,
    frame_channel,
    int_param,
    is_token,
    is_transfer_id,
    make_url,
    new_token,
    parse_channel,
    parse_url,
)
from market.client import BinaryMessage, RelayRouter
from market.core.errors import GolemError
from market.core.ids import NodeId, new_id

log = logging.getLogger(__name__)

Authorizer = Callable[[NodeId, str], bool]
"""``authorize(sender, token)``: may this node use this token? (e.g. only our agreements' providers)"""


class ShareError(GolemError):
    """Root of the file share's errors; ``code`` travels on the relay and maps to HTTP at the API."""

    code = CODE_BAD_REQUEST

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class InvalidPathError(ShareError):
    """A path given to publish or receive is relative, missing, or of the wrong kind."""


class UnknownUrlError(ShareError):
    """No published file or receive slot has this token (never had, or closed)."""

    code = CODE_NOT_FOUND


class ShareForbiddenError(ShareError):
    """The token exists, but not for this use (upload to a published file) or not for this node."""

    code = CODE_FORBIDDEN


class UploadIntegrityError(ShareError):
    """An upload's bytes do not match the size or hash its sender declared; nothing is written."""

    code = CODE_INTEGRITY


def _allow_all(sender: NodeId, token: str) -> bool:
    return True


@dataclass
class _Upload:
    """One upload in progress into a receive slot."""

    transfer_id: str
    token: str
    sender: NodeId
    target: Path
    temp: Path
    fd: int
    declared_size: int
    received: int = 0
    failure: str | None = None
    digest: Any = field(default_factory=hashlib.sha3_224)
    touched: float = field(default_factory=time.monotonic)
    waiters: list[tuple[int, asyncio.Future[None]]] = field(default_factory=list)

    def wake(self) -> None:
        keep = []
        for threshold, future in self.waiters:
            if future.done():
                continue
            if self.failure is not None or self.received >= threshold:
                future.set_result(None)
            else:
                keep.append((threshold, future))
        self.waiters = keep


class FileShare:
    """Files this requestor node publishes to providers, and slots providers upload into.

    ``FileShare(router, node_id)`` registers its relay methods and binary channel on ``router``
    at once. :meth:`publish`, :meth:`receive` and :meth:`close` are what the gftp API calls;
    call :meth:`aclose` on shutdown to drop unfinished uploads' temporary files.
    """

    def __init__(
        self,
        router: RelayRouter,
        node_id: str | None = None,
        *,
        authorize: Authorizer | None = None,
        max_upload_bytes: int = 64 * 1024**3,
        frame_timeout: float = 60.0,
        idle_timeout: float = 300.0,
        chunk_bytes: int = CHUNK_BYTES,
        pacer: FramePacer | None = None,
    ) -> None:
        self.router = router
        self.node_id = NodeId((node_id or router.client.node_id).lower())
        self.authorize: Authorizer = authorize or _allow_all
        self.max_upload_bytes = max_upload_bytes
        self.frame_timeout = frame_timeout
        self.idle_timeout = idle_timeout
        self.chunk_bytes = chunk_bytes
        self.pacer = pacer or FramePacer()
        self._published: dict[str, Path] = {}
        self._slots: dict[str, Path] = {}
        self._uploads: dict[str, _Upload] = {}
        self._resolver: RelayGftpResolver | None = None
        router.handle(M_INFO, self._info)
        router.handle(M_READ, self._read)
        router.handle(M_UPLOAD_BEGIN, self._upload_begin)
        router.handle(M_UPLOAD_SYNC, self._upload_sync)
        router.handle(M_UPLOAD_END, self._upload_end)
        router.handle(M_UPLOAD_ABORT, self._upload_abort)
        router.on_channel(UPLOAD_CHANNEL, self._on_upload_frame)

    # -- the local side (gftp API) -------------------------------------------------------------------

    def publish(self, paths: Iterable[str | Path]) -> list[tuple[Path, str]]:
        """Share files read-only; returns (file, url) per path. All paths are checked before any
        is published, so one bad path publishes nothing."""
        files = [_absolute(p, "publish") for p in paths]
        for file in files:
            if not file.is_file():
                raise InvalidPathError(f"cannot publish {file}: no such file")
        links = []
        for file in files:
            token = new_token()
            self._published[token] = file
            links.append((file, make_url(self.node_id, token)))
            log.debug("published %s as %s", file, token)
        return links

    def receive(self, output_file: str | Path) -> tuple[Path, str]:
        """Open a slot a provider can upload one file into; it lands at ``output_file``."""
        target = _absolute(output_file, "receive")
        if not target.parent.is_dir():
            raise InvalidPathError(f"cannot receive into {target}: folder {target.parent} does not exist")
        if target.is_dir():
            raise InvalidPathError(f"cannot receive into {target}: it is a folder")
        token = new_token()
        self._slots[token] = target
        return target, make_url(self.node_id, token)

    def close(self, url: str) -> bool:
        """Stop sharing ``url`` (a published file or a receive slot); False if it was not open."""
        token = self._own_token(url)
        if token is None:
            return False
        if self._published.pop(token, None) is not None:
            return True
        if self._slots.pop(token, None) is None:
            return False
        for upload in [u for u in self._uploads.values() if u.token == token]:
            self._drop(upload, "the receive slot was closed")
        return True

    async def upload(self, src: str | Path, url: str) -> None:
        """Push a local file to a gftp URL: one of our own receive slots, or another node's."""
        source = _absolute(src, "upload")
        if not source.is_file():
            raise InvalidPathError(f"cannot upload {source}: no such file")
        try:
            owner, token = parse_url(url)
        except GftpError as exc:
            raise InvalidPathError(str(exc)) from None
        if owner != self.node_id:
            if self._resolver is None:
                self._resolver = RelayGftpResolver(self.router, pacer=self.pacer)
            try:
                await self._resolver.upload(source, url)
            except GftpError as exc:
                raise _share_error(exc.code, str(exc)) from exc
            except OSError as exc:
                raise ShareError(f"cannot read {source}: {exc.strerror}") from None
            return
        target = self._slot(token)
        try:
            temp = _temp_beside(target)
            try:
                await asyncio.to_thread(shutil.copyfile, source, temp)
                temp.replace(target)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    temp.unlink()
        except OSError as exc:
            raise ShareError(f"cannot copy {source} to {target}: {exc.strerror}") from None

    def published(self) -> dict[str, Path]:
        """A copy of the published table (token → file), for status views and tests."""
        return dict(self._published)

    async def aclose(self) -> None:
        for upload in list(self._uploads.values()):
            self._drop(upload, "the file share is closing")

    # -- relay handlers: download --------------------------------------------------------------------

    async def _info(self, sender: NodeId, params: dict[str, Any]) -> dict[str, Any]:
        path = self._readable(sender, params.get("token"))
        try:
            size = path.stat().st_size
        except OSError:
            raise UnknownUrlError(f"published file {path.name} is gone from the requestor's disk") from None
        return {"size": size}

    async def _read(self, sender: NodeId, params: dict[str, Any]) -> dict[str, Any]:
        path = self._readable(sender, params.get("token"))
        offset = int_param(params, "offset")
        length = int_param(params, "length", maximum=MAX_READ_BYTES)
        read_id = params.get("read_id")
        if not is_transfer_id(read_id):
            raise ShareError("read_id must be 32 hex digits")
        assert isinstance(read_id, str)
        try:
            fh = _open_read(path)
        except OSError:
            raise UnknownUrlError(f"published file {path.name} can no longer be read") from None
        sent = 0
        with fh:
            fh.seek(offset)
            while sent < length:
                chunk = fh.read(min(self.chunk_bytes, length - sent))
                if not chunk:
                    break
                await self.pacer.wait()
                channel = frame_channel(DOWNLOAD_CHANNEL, read_id, offset + sent)
                await self.router.client.send_bytes(sender, chunk, channel=channel)
                sent += len(chunk)
        return {"length": sent}

    # -- relay handlers: upload ----------------------------------------------------------------------

    async def _upload_begin(self, sender: NodeId, params: dict[str, Any]) -> dict[str, Any]:
        token = params.get("token")
        if not is_token(token):
            raise ShareError("token must be a hex string")
        assert isinstance(token, str)
        if token in self._published:
            raise ShareForbiddenError("this gftp URL is a published file and is read-only")
        target = self._slot(token)
        if not self.authorize(sender, token):
            raise ShareForbiddenError("this node may not upload to this gftp URL")
        size = int_param(params, "size")
        if size > self.max_upload_bytes:
            raise ShareForbiddenError(f"upload of {size} bytes exceeds the limit of {self.max_upload_bytes}")
        self._prune_idle()
        try:
            temp = _temp_beside(target)
            fd = os.open(temp, os.O_WRONLY | os.O_TRUNC)
        except OSError as exc:
            raise ShareError(f"cannot write beside {target.name}: {exc.strerror}") from None
        transfer_id = new_id()
        self._uploads[transfer_id] = _Upload(transfer_id, token, sender, target, temp, fd, size)
        return {"transfer_id": transfer_id}

    async def _on_upload_frame(self, message: BinaryMessage) -> None:
        parsed = parse_channel(UPLOAD_CHANNEL, message.channel)
        upload = self._uploads.get(parsed[0]) if parsed else None
        if parsed is None or upload is None or upload.sender != message.sender:
            log.debug("dropping a gftp upload frame on %r from %s", message.channel, message.sender)
            return
        if upload.failure is not None:
            return
        offset, body = parsed[1], message.body
        upload.touched = time.monotonic()
        if offset != upload.received:
            upload.failure = f"frame at offset {offset} out of order (expected {upload.received})"
        elif upload.received + len(body) > upload.declared_size:
            upload.failure = f"more than the declared {upload.declared_size} bytes arrived"
        else:
            try:
                os.write(upload.fd, body)
            except OSError as exc:
                upload.failure = f"the requestor could not write the file: {exc.strerror}"
            else:
                upload.digest.update(body)
                upload.received += len(body)
        upload.wake()

    async def _upload_sync(self, sender: NodeId, params: dict[str, Any]) -> dict[str, Any]:
        upload = self._upload_of(sender, params)
        await self._wait_for(upload, int_param(params, "offset"))
        if upload.failure is not None:
            failure = upload.failure
            self._drop(upload, failure)
            raise UploadIntegrityError(failure)
        return {"received": upload.received}

    async def _upload_end(self, sender: NodeId, params: dict[str, Any]) -> dict[str, Any]:
        upload = self._upload_of(sender, params)
        size = int_param(params, "size")
        declared = params.get("sha3_224")
        try:
            if size != upload.declared_size:
                raise UploadIntegrityError(
                    f"size mismatch: {size} bytes sent, {upload.declared_size} announced"
                )
            await self._wait_for(upload, size)
            if upload.failure is not None:
                raise UploadIntegrityError(upload.failure)
            if upload.received != size:
                raise UploadIntegrityError(f"size mismatch: {upload.received} bytes arrived, {size} sent")
            if not isinstance(declared, str) or declared.lower() != upload.digest.hexdigest():
                raise UploadIntegrityError("sha3-224 mismatch: the uploaded bytes are not what was sent")
            if self._slots.get(upload.token) != upload.target:
                raise UnknownUrlError("the receive slot was closed during the upload")
            os.close(upload.fd)
            upload.fd = -1
            upload.temp.replace(upload.target)
        except BaseException as exc:
            self._drop(upload, str(exc) or type(exc).__name__)
            raise
        self._uploads.pop(upload.transfer_id, None)
        log.debug("received %s (%d bytes) from %s", upload.target, size, sender)
        return {"size": size}

    async def _upload_abort(self, sender: NodeId, params: dict[str, Any]) -> dict[str, Any]:
        upload = self._upload_of(sender, params)
        self._drop(upload, "aborted by the sender")
        return {}

    # -- helpers -------------------------------------------------------------------------------------

    def _own_token(self, url: str) -> str | None:
        try:
            owner, token = parse_url(url)
        except GftpError:
            return None
        return token if owner == self.node_id else None

    def _readable(self, sender: NodeId, token: object) -> Path:
        if not is_token(token):
            raise ShareError("token must be a hex string")
        assert isinstance(token, str)
        path = self._published.get(token)
        if path is None:
            raise UnknownUrlError("no file is published under this gftp URL")
        if not self.authorize(sender, token):
            raise ShareForbiddenError("this node may not read this gftp URL")
        return path

    def _slot(self, token: str) -> Path:
        target = self._slots.get(token)
        if target is None:
            raise UnknownUrlError("no receive slot is open under this gftp URL")
        return target

    def _upload_of(self, sender: NodeId, params: dict[str, Any]) -> _Upload:
        transfer_id = params.get("transfer_id")
        upload = self._uploads.get(transfer_id) if isinstance(transfer_id, str) else None
        if upload is None or upload.sender != sender:
            raise UnknownUrlError("no such upload in progress")
        return upload

    async def _wait_for(self, upload: _Upload, received: int) -> None:
        """Until ``received`` bytes are in, the upload failed, or no byte came for ``frame_timeout``."""
        while upload.failure is None and upload.received < received:
            before = upload.received
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            upload.waiters.append((received, future))
            try:
                async with asyncio.timeout(self.frame_timeout):
                    await future
            except TimeoutError:
                if upload.received == before:
                    upload.failure = f"no data for {self.frame_timeout:g} s ({upload.received} bytes arrived)"
            finally:
                future.cancel()

    def _drop(self, upload: _Upload, reason: str) -> None:
        self._uploads.pop(upload.transfer_id, None)
        upload.failure = upload.failure or reason
        upload.wake()
        if upload.fd >= 0:
            os.close(upload.fd)
            upload.fd = -1
        with contextlib.suppress(FileNotFoundError):
            upload.temp.unlink()

    def _prune_idle(self) -> None:
        now = time.monotonic()
        for upload in list(self._uploads.values()):
            if now - upload.touched > self.idle_timeout:
                log.info("dropping upload %s into %s: idle", upload.transfer_id, upload.target.name)
                self._drop(upload, "idle for too long")


def _absolute(value: str | Path, what: str) -> Path:
    path = Path(value)
    if "\x00" in str(value) or not path.is_absolute():
        raise InvalidPathError(f"{what} needs an absolute path, got {str(value)!r}")
    return path


def _open_read(path: Path) -> IO[bytes]:
    return path.open("rb")


def _temp_beside(target: Path) -> Path:
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".gftp-part")
    os.close(fd)
    os.chmod(name, 0o644)  # mkstemp's 0600 would otherwise become the received file's mode
    return Path(name)


def _share_error(code: str, message: str) -> ShareError:
    kinds: dict[str, type[ShareError]] = {
        CODE_NOT_FOUND: UnknownUrlError,
        CODE_FORBIDDEN: ShareForbiddenError,
        CODE_INTEGRITY: UploadIntegrityError,
    }
    kind = kinds.get(code)
    return kind(message) if kind is not None else ShareError(message, code)
