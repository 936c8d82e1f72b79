"""The provider's side of VPN tunnels: ``net.connect`` over the relay, and the pipes it starts.

A requestor daemon opens a tunnel into one of its activities by calling ``net.connect`` (see
:mod:`exeunits.vpn` for the protocol). :class:`VpnHost` finds the activity that joined that VPN at
that address, checks that the caller is the requestor of its agreement (the relay vouches for the
sender's id), asks the activity's runtime for a TCP connection to the port and then pipes bytes
between that connection and a :class:`~market.client.streams.RelayStream` until both sides have
ended, either side resets, or the activity ends. The relay stream's credits bound what is buffered
per tunnel; a container that stops reading stops the requestor's writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Mapping
from typing import Any, Protocol

from exeunits.activity import Activity
from exeunits.errors import ExeScriptError, ExeUnitError, ForbiddenError, RuntimeCommandError
from exeunits.gftp import FramePacer
from exeunits.host import HostedActivity
from exeunits.runtime.base import ByteChannel, TcpReachable
from exeunits.script import ActivityState
from exeunits.vpn import (
    CODE_TIMEOUT,
    CODE_UNREACHABLE,
    FRAME_BURST,
    FRAMES_PER_SECOND,
    M_CONNECT,
    MAX_TUNNELS,
    MAX_TUNNELS_PER_PEER,
    STREAMS_NAME,
    WINDOW_BYTES,
    VpnAddressError,
    parse_address,
)
from market.client.relay import RelayRouter
from market.client.streams import RelayStream, RelayStreams, StreamClosedError, StreamLimitError
from market.core.ids import NodeId

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0
_STREAM_ID = re.compile(r"^[0-9a-f]{32}$")


class VpnError(ExeUnitError):
    """A tunnel cannot be opened; ``code`` says why (as it travels on the relay)."""

    def __init__(self, message: str, code: str = CODE_UNREACHABLE) -> None:
        super().__init__(message)
        self.code = code


class NoSuchMemberError(VpnError):
    """No activity here joined that VPN at that address."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "not_found")


class ActivitySource(Protocol):
    """Where the activities are (an :class:`~exeunits.host.ActivityHost`)."""

    @property
    def activities(self) -> Mapping[str, HostedActivity]: ...


class VpnHost:
    """Serves ``net.connect`` for the activities of ``host``; ``register()``, then ``close()``."""

    def __init__(
        self,
        router: RelayRouter,
        host: ActivitySource,
        *,
        connect_timeout: float = CONNECT_TIMEOUT,
        streams: RelayStreams | None = None,
    ) -> None:
        self.router = router
        self.host = host
        self.connect_timeout = connect_timeout
        self.streams = streams or RelayStreams(
            router,
            STREAMS_NAME,
            window_bytes=WINDOW_BYTES,
            pacer=FramePacer(FRAMES_PER_SECOND, FRAME_BURST),
            max_streams=MAX_TUNNELS,
            max_per_peer=MAX_TUNNELS_PER_PEER,
        )
        self._pipes: set[asyncio.Task[None]] = set()

    def register(self) -> None:
        self.router.handle(M_CONNECT, self._connect)

    @property
    def open_tunnels(self) -> int:
        return len(self._pipes)

    async def close(self) -> None:
        """End every tunnel (the provider is shutting down)."""
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        await self.streams.close()

    # -- net.connect ---------------------------------------------------------------------------------

    async def _connect(self, sender: NodeId, params: dict[str, Any]) -> dict[str, Any]:
        network_id = params.get("networkId")
        stream_id = params.get("streamId")
        port = params.get("port")
        if not isinstance(network_id, str) or not network_id:
            raise ExeScriptError("networkId must be a non-empty string")
        if not isinstance(stream_id, str) or not _STREAM_ID.match(stream_id):
            raise ExeScriptError("streamId must be 32 lower-case hex digits")
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            raise ExeScriptError("port must be a TCP port number (1-65535)")
        try:
            address = parse_address(params.get("ip", ""))
        except VpnAddressError as exc:
            raise ExeScriptError(str(exc)) from None
        hosted = self._member(sender, network_id, str(address))
        activity = hosted.activity
        if activity.state is not ActivityState.READY:
            raise VpnError(f"the activity at {address} is not running (it is {activity.state.value})")
        runtime = activity.runtime
        if not isinstance(runtime, TcpReachable):
            raise VpnError(f"the runtime of the activity at {address} serves no TCP ports")
        if self.streams.count(sender) >= self.streams.max_per_peer:
            raise StreamLimitError(
                f"you have {self.streams.max_per_peer} tunnels open here, the most allowed"
            )
        try:
            async with asyncio.timeout(self.connect_timeout):
                channel = await runtime.connect(port)
        except TimeoutError:
            raise VpnError(
                f"no connection to {address}:{port} within {self.connect_timeout:g} s", CODE_TIMEOUT
            ) from None
        except RuntimeCommandError as exc:
            raise VpnError(f"{address}:{port}: {exc}") from exc
        try:
            stream = self.streams.open(sender, stream_id)
        except StreamLimitError:
            await channel.close()
            raise
        log.info("tunnel %s: %s -> activity %s port %d", stream_id[:8], sender, activity.activity_id, port)
        task = asyncio.create_task(self._pipe(stream, channel, activity), name=f"tunnel-{stream_id[:8]}")
        self._pipes.add(task)
        task.add_done_callback(self._pipes.discard)
        return {}

    def _member(self, sender: NodeId, network_id: str, address: str) -> HostedActivity:
        """The sender's live activity holding ``address`` in ``network_id``."""
        someone_elses = False
        for hosted in list(self.host.activities.values()):
            joined = any(
                net.network_id == network_id and str(net.address) == address
                for net in hosted.activity.networks
            )
            if not joined or hosted.activity.terminated.is_set():
                continue
            if hosted.requestor_id == sender:
                return hosted
            someone_elses = True
        if someone_elses:
            raise ForbiddenError(f"{address} in network {network_id} is not one of your activities")
        raise NoSuchMemberError(f"no activity here holds {address} in network {network_id}")

    # -- the pipe ------------------------------------------------------------------------------------

    async def _pipe(self, stream: RelayStream, channel: ByteChannel, activity: Activity) -> None:
        """Copy both ways until both sides ended (clean) or anything fails (reset with why)."""

        async def inbound() -> None:  # requestor -> exe unit
            while data := await stream.read():
                await channel.write(data)
            await channel.write_eof()

        async def outbound() -> None:  # exe unit -> requestor
            while data := await channel.read():
                await stream.write(data)
            await stream.write_eof()

        reason = "closed"
        directions = {asyncio.create_task(inbound()), asyncio.create_task(outbound())}
        ended = asyncio.create_task(activity.terminated.wait())
        try:
            while directions:
                done, _ = await asyncio.wait(directions | {ended}, return_when=asyncio.FIRST_COMPLETED)
                if ended in done:
                    reason = "the activity ended"
                    break
                failure = next((t.exception() for t in done if t.exception() is not None), None)
                directions -= done
                if failure is not None:
                    reason = _why(failure)
                    break
        finally:
            for task in (*directions, ended):
                task.cancel()
            await asyncio.gather(*directions, ended, return_exceptions=True)
            with contextlib.suppress(ExeUnitError, OSError):
                await channel.close()
            await stream.close(reason)
            log.info("tunnel %s ended: %s", stream.stream_id[:8], stream.reset_reason or "both sides closed")


def _why(failure: BaseException) -> str:
    if isinstance(failure, (StreamClosedError, RuntimeCommandError)):
        return str(failure)
    if isinstance(failure, (ConnectionError, OSError)):
        return f"the connection in the container broke: {failure}"
    log.error("tunnel failed", exc_info=failure)
    return "internal error in the provider's tunnel"
