"""``gftp://`` transfers over the market relay: the shared protocol and the provider's side of it.

A requestor's daemon publishes files as ``gftp://<requestor node id>/<token>`` (and opens receive
slots under the same form); the URLs travel inside ExeScript ``transfer`` commands to the provider,
whose exe units hand them to a :class:`RelayGftpResolver`. The resolver talks to the requestor's
daemon through the market relay: JSON calls on the :class:`~market.client.RelayRouter` for control,
binary frames for the bytes.

Download (the provider pulls a published file)::

    provider                                   requestor
    gftp.info {token}                      ->  {size}
    gftp.read {token, offset, length, read_id}
                                           <-  frames on "gftp:<read_id>:<offset>" ...
                                           <-  {length}        (after the last frame was sent)

The provider keeps a bounded number of reads (windows) in flight and writes each frame at its offset,
so throughput is not bound by one round trip per window while memory stays bounded.

Upload (the provider pushes a file into a receive slot)::

    gftp.upload.begin {token, size}        ->  {transfer_id}
    frames on "gftp-up:<transfer_id>:<offset>" ...
    gftp.upload.sync {transfer_id, offset} ->  {received}     (after each window; bounds the backlog)
    gftp.upload.end {transfer_id, size, sha3_224}  ->  {size}  (verified, written atomically)
    gftp.upload.abort {transfer_id}        ->  {}             (best effort on failure)

The constants here are the protocol; the requestor side (``requestor.gftp``) imports them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from exeunits.errors import TransferError
from market.client import BinaryMessage, RelayRouter, RelayRpcError
from market.core.ids import NodeId, new_id, node_id
from market.protocol.errors import MarketError

log = logging.getLogger(__name__)

SCHEME = "gftp"
M_INFO = "gftp.info"
M_READ = "gftp.read"
M_UPLOAD_BEGIN = "gftp.upload.begin"
M_UPLOAD_SYNC = "gftp.upload.sync"
M_UPLOAD_END = "gftp.upload.end"
M_UPLOAD_ABORT = "gftp.upload.abort"
DOWNLOAD_CHANNEL = "gftp:"
UPLOAD_CHANNEL = "gftp-up:"

CHUNK_BYTES = 512 * 1024
"""Bytes per binary frame; under the market node's default 1 MiB frame limit with room for the header."""
WINDOW_BYTES = 4 * 1024 * 1024
"""Bytes per ``gftp.read`` call, and per ``gftp.upload.sync`` on the way up."""
WINDOWS_IN_FLIGHT = 4
"""Windows outstanding at once in either direction: at most 16 MiB buffered per transfer."""
MAX_READ_BYTES = 16 * 1024 * 1024
"""The largest window the requestor serves in one ``gftp.read``."""
FRAMES_PER_SECOND = 800.0
"""Our pace for gftp frames on one session: the market node drops frames beyond its per-session rate
(1000 messages/s by default), so we stay below it and leave room for the daemon's other messages."""
FRAME_BURST = 200

# Error codes on the relay (RelayRpcError.code).
CODE_NOT_FOUND = "not_found"
CODE_FORBIDDEN = "forbidden"
CODE_BAD_REQUEST = "bad_request"
CODE_INTEGRITY = "integrity"

_TOKEN = re.compile(r"^[0-9a-f]{32,64}$")
_ID = re.compile(r"^[0-9a-f]{32}$")


class GftpError(TransferError):
    """A ``gftp://`` transfer failed; ``code`` is the stable reason (as on the relay)."""

    code = "gftp_error"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


def new_token() -> str:
    """A fresh unguessable token for a published file or a receive slot."""
    return new_id()


def is_token(value: object) -> bool:
    return isinstance(value, str) and _TOKEN.match(value) is not None


def is_transfer_id(value: object) -> bool:
    return isinstance(value, str) and _ID.match(value) is not None


def make_url(owner: str, token: str) -> str:
    return f"{SCHEME}://{owner}/{token}"


def parse_url(url: str) -> tuple[NodeId, str]:
    """``gftp://<node id>/<token>`` → (node id, token); raises :class:`GftpError` (bad_request)."""
    parts = urlsplit(url)
    token = parts.path.removeprefix("/")
    if parts.scheme != SCHEME or not is_token(token) or parts.query or parts.fragment:
        raise GftpError(f"not a gftp URL of this network: {url!r}", CODE_BAD_REQUEST)
    try:
        owner = node_id(parts.netloc)
    except ValueError:
        raise GftpError(f"gftp URL {url!r} does not name a node id", CODE_BAD_REQUEST) from None
    return owner, token


def frame_channel(prefix: str, transfer_id: str, offset: int) -> str:
    return f"{prefix}{transfer_id}:{offset}"


def parse_channel(prefix: str, channel: str) -> tuple[str, int] | None:
    """The (transfer id, offset) a frame's channel names, or None if it is malformed."""
    transfer_id, _, offset = channel.removeprefix(prefix).partition(":")
    if not is_transfer_id(transfer_id) or not offset.isdigit():
        return None
    return transfer_id, int(offset)


def _read_and_hash(fh: BinaryIO, digest: Any, size: int) -> bytes:
    chunk = fh.read(size)
    digest.update(chunk)
    return chunk


def int_param(params: dict[str, Any], name: str, *, maximum: int | None = None) -> int:
    """A non-negative integer parameter, refusing booleans, strings and out-of-range values."""
    value = params.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise GftpError(f"{name} must be a non-negative integer", CODE_BAD_REQUEST)
    if maximum is not None and value > maximum:
        raise GftpError(f"{name} must be at most {maximum}", CODE_BAD_REQUEST)
    return value


class FramePacer:
    """A token bucket shared by every gftp sender on one market session.

    The market node counts frames per session and silently drops those over its limit; a dropped
    chunk would fail the transfer, so senders wait here instead.
    """

    def __init__(self, per_second: float = FRAMES_PER_SECOND, burst: int = FRAME_BURST) -> None:
        self.per_second = per_second
        self.burst = float(max(1, burst))
        self._tokens = self.burst
        self._last = time.monotonic()

    async def wait(self) -> None:
        while True:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.per_second)
            self._last = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return
            await asyncio.sleep((1.0 - self._tokens) / self.per_second)


@dataclass
class _Window:
    """One ``gftp.read`` in flight: where its frames go and how far they got."""

    sender: NodeId
    fd: int
    base: int
    length: int
    received: int = 0
    failure: str | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)


class RelayGftpResolver:
    """The provider daemon's :class:`~exeunits.transfer.GftpResolver`: moves files to and from a
    requestor daemon's ``gftp://`` URLs over the market relay.

    Create one per router (it registers the ``gftp:`` binary channel on it) and pass it to
    ``TransferService(gftp=...)``.
    """

    def __init__(
        self,
        router: RelayRouter,
        *,
        max_bytes: int = 16 * 1024**3,
        chunk_bytes: int = CHUNK_BYTES,
        window_bytes: int = WINDOW_BYTES,
        windows_in_flight: int = WINDOWS_IN_FLIGHT,
        frame_timeout: float = 60.0,
        transfer_call_timeout: float = 300.0,
        pacer: FramePacer | None = None,
    ) -> None:
        self.router = router
        self.transfer_call_timeout = transfer_call_timeout
        self.pacer = pacer or FramePacer()
        self.max_bytes = max_bytes
        self.chunk_bytes = chunk_bytes
        self.window_bytes = max(window_bytes, chunk_bytes)
        self.windows_in_flight = max(1, windows_in_flight)
        self.frame_timeout = frame_timeout
        self._windows: dict[str, _Window] = {}
        router.on_channel(DOWNLOAD_CHANNEL, self._on_frame)

    # -- download ------------------------------------------------------------------------------------

    async def download(self, url: str, dest: Path) -> None:
        """Fetch the file behind ``url`` into ``dest``; on failure ``dest`` is removed."""
        owner, token = parse_url(url)
        try:
            info = await self._call(owner, M_INFO, {"token": token}, url)
            size = info.get("size")
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise GftpError(f"{url}: the requestor sent no valid size", CODE_BAD_REQUEST)
            if size > self.max_bytes:
                raise GftpError(f"{url} is {size} bytes, over the limit of {self.max_bytes}", CODE_FORBIDDEN)
            fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                await self._read_windows(owner, token, url, fd, size)
                written = os.fstat(fd).st_size
            finally:
                os.close(fd)
            if written != size:
                raise GftpError(f"{url}: received {written} bytes, expected {size}", CODE_INTEGRITY)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                dest.unlink()
            raise

    async def _read_windows(self, owner: NodeId, token: str, url: str, fd: int, size: int) -> None:
        """Keep up to ``windows_in_flight`` reads outstanding until the whole file is asked for."""
        reads: deque[asyncio.Task[None]] = deque()
        try:
            for offset in range(0, size, self.window_bytes):
                length = min(self.window_bytes, size - offset)
                reads.append(asyncio.create_task(self._read_window(owner, token, url, fd, offset, length)))
                if len(reads) >= self.windows_in_flight:
                    await reads.popleft()
            while reads:
                await reads.popleft()
        finally:
            for task in reads:
                task.cancel()
            await asyncio.gather(*reads, return_exceptions=True)

    async def _read_window(
        self, owner: NodeId, token: str, url: str, fd: int, offset: int, length: int
    ) -> None:
        read_id = new_id()
        window = _Window(sender=owner, fd=fd, base=offset, length=length)
        self._windows[read_id] = window
        try:
            params = {"token": token, "offset": offset, "length": length, "read_id": read_id}
            # A slow link needs long enough for a whole window, whatever the router's default.
            answer = await self._call(owner, M_READ, params, url, timeout=self.transfer_call_timeout)
            if answer.get("length") != length:
                raise GftpError(
                    f"{url}: the file changed size while it was being sent "
                    f"({answer.get('length')} of {length} bytes at offset {offset})",
                    CODE_INTEGRITY,
                )
            # The answer overtakes frames still queued on our side; wait for them, not for silence.
            try:
                async with asyncio.timeout(self.frame_timeout):
                    await window.done.wait()
            except TimeoutError:
                raise GftpError(
                    f"{url}: {window.received} of {length} bytes at offset {offset} arrived "
                    f"within {self.frame_timeout:g} s",
                    CODE_INTEGRITY,
                ) from None
            if window.failure is not None:
                raise GftpError(f"{url}: {window.failure}", CODE_INTEGRITY)
        finally:
            self._windows.pop(read_id, None)

    async def _on_frame(self, message: BinaryMessage) -> None:
        parsed = parse_channel(DOWNLOAD_CHANNEL, message.channel)
        window = self._windows.get(parsed[0]) if parsed else None
        if parsed is None or window is None or window.done.is_set():
            log.debug("dropping a gftp frame on %r from %s: no such read", message.channel, message.sender)
            return
        if message.sender != window.sender:
            log.warning("dropping a gftp frame from %s for a read from %s", message.sender, window.sender)
            return
        offset = parsed[1]
        expected = window.base + window.received
        if offset != expected or window.received + len(message.body) > window.length:
            window.failure = f"frame at offset {offset} out of order (expected {expected})"
            window.done.set()
            return
        try:
            os.pwrite(window.fd, message.body, offset)
        except OSError as exc:
            window.failure = f"cannot write the download: {exc.strerror}"
            window.done.set()
            return
        window.received += len(message.body)
        if window.received == window.length:
            window.done.set()

    # -- upload --------------------------------------------------------------------------------------

    async def upload(self, src: Path, url: str) -> None:
        """Push ``src`` into the receive slot behind ``url``; the requestor verifies size and hash."""
        owner, token = parse_url(url)
        size = src.stat().st_size
        if size > self.max_bytes:
            raise GftpError(f"{src} is {size} bytes, over the limit of {self.max_bytes}", CODE_FORBIDDEN)
        begun = await self._call(owner, M_UPLOAD_BEGIN, {"token": token, "size": size}, url)
        transfer_id = begun.get("transfer_id")
        if not is_transfer_id(transfer_id):
            raise GftpError(f"{url}: the requestor sent no valid transfer id", CODE_BAD_REQUEST)
        assert isinstance(transfer_id, str)
        syncs: deque[asyncio.Task[dict[str, Any]]] = deque()
        finished = False
        try:
            digest = hashlib.sha3_224()
            sent = 0
            unsynced = 0
            with src.open("rb") as fh:
                # Read and hash the next chunk in a thread while this one is being sent.
                reading = asyncio.ensure_future(
                    asyncio.to_thread(_read_and_hash, fh, digest, self.chunk_bytes)
                )
                try:
                    while chunk := await reading:
                        reading = asyncio.ensure_future(
                            asyncio.to_thread(_read_and_hash, fh, digest, self.chunk_bytes)
                        )
                        channel = frame_channel(UPLOAD_CHANNEL, transfer_id, sent)
                        await self.pacer.wait()
                        try:
                            await self.router.client.send_bytes(owner, chunk, channel=channel)
                        except MarketError as exc:
                            raise GftpError(f"gftp transfer {url}: {exc}", "unavailable") from exc
                        sent += len(chunk)
                        unsynced += len(chunk)
                        if unsynced >= self.window_bytes:
                            unsynced = 0
                            params = {"transfer_id": transfer_id, "offset": sent}
                            sync = self._call(owner, M_UPLOAD_SYNC, params, url, self.transfer_call_timeout)
                            syncs.append(asyncio.create_task(sync))
                            while len(syncs) >= self.windows_in_flight:
                                await syncs.popleft()
                finally:
                    # The file stays open until the thread's read is over.
                    await asyncio.gather(reading, return_exceptions=True)
            while syncs:
                await syncs.popleft()
            params = {"transfer_id": transfer_id, "size": sent, "sha3_224": digest.hexdigest()}
            await self._call(owner, M_UPLOAD_END, params, url, timeout=self.transfer_call_timeout)
            finished = True
        finally:
            for task in syncs:
                task.cancel()
            await asyncio.gather(*syncs, return_exceptions=True)
            if not finished:
                with contextlib.suppress(GftpError):
                    await self._call(owner, M_UPLOAD_ABORT, {"transfer_id": transfer_id}, url, timeout=5.0)

    # -- helpers -------------------------------------------------------------------------------------

    async def _call(
        self, owner: NodeId, method: str, params: dict[str, Any], url: str, timeout: float | None = None
    ) -> dict[str, Any]:
        try:
            return await self.router.call(owner, method, params, timeout=timeout)
        except RelayRpcError as exc:
            raise GftpError(f"gftp transfer {url}: {exc}", exc.code) from exc
