"""One activity: its state machine and the batch executor that feeds its runtime.

:meth:`Activity.exec` accepts a parsed ExeScript and runs it in an owned background task, command
by command: the state rules (``deploy`` only when Initialized, ``start`` only when Deployed,
everything else only when Ready) are checked first, each command is bounded by a timeout, the first
failure ends the batch, and as it goes it appends streamed :class:`RuntimeEvent`s and
:class:`ExeScriptCommandResult`s to the :class:`Batch`. Readers long-poll results or follow events;
both see exactly what yagna's exe unit would send.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from exeunits import vpn
from exeunits.errors import ActivityStateError, ExeScriptError, ExeUnitError
from exeunits.runtime.base import DeployOptions, ExeUnitRuntime, NetworkAttachment, RunResult, StreamName
from exeunits.script import (
    ActivityState,
    ActivityStateWire,
    AtEndCapture,
    CaptureMode,
    Command,
    CommandOutcome,
    Deploy,
    ExeScriptCommandResult,
    Run,
    RuntimeEvent,
    Sign,
    Start,
    Terminate,
    Transfer,
    activity_transition,
    command_to_wire,
)
from exeunits.transfer import TransferService
from market.core.clock import Clock, SystemClock
from market.core.ids import new_id
from market.core.logging import correlated

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExecutorSettings:
    command_timeout: float = 3600.0
    batch_timeout: float = 6 * 3600.0


class Batch:
    """Results and events of one ExeScript batch, as they accumulate."""

    def __init__(self, batch_id: str, commands: list[Command]) -> None:
        self.batch_id = batch_id
        self.commands = commands
        self.results: list[ExeScriptCommandResult] = []
        self.events: list[RuntimeEvent] = []
        self.finished = False
        self._changed = asyncio.Event()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_changed(self) -> None:
        """Return at the next new event or result."""
        await self._changed.wait()

    def add_event(self, event: RuntimeEvent) -> None:
        self.events.append(event)
        self._notify()

    def add_result(self, result: ExeScriptCommandResult) -> None:
        self.results.append(result)
        if result.is_batch_finished:
            self.finished = True
        self._notify()

    async def wait_results(
        self, command_index: int | None = None, timeout: float = 0.0
    ) -> list[ExeScriptCommandResult]:
        """Results so far, cumulative from index 0, waiting up to ``timeout`` s for ``command_index``
        (the last command if None). Raises ``TimeoutError`` only when an index was asked for."""
        target = len(self.commands) - 1 if command_index is None else command_index
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(timeout, 0.0)
        while len(self.results) <= target and not self.finished:
            remaining = deadline - loop.time()
            if remaining <= 0:
                if command_index is not None:
                    raise TimeoutError(f"command {command_index} has not finished")
                break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._changed.wait()
        return list(self.results[: target + 1])

    async def follow(self, start: int = 0) -> AsyncIterator[RuntimeEvent]:
        """Every event from ``start`` on, waiting for more until the batch has finished."""
        position = start
        while True:
            while position < len(self.events):
                yield self.events[position]
                position += 1
            if self.finished:
                return
            await self.wait_changed()


class _Output:
    """One stream of one ``run``: decode, stream and keep it as its capture mode says."""

    def __init__(self, name: StreamName, mode: CaptureMode | None, emit: Any) -> None:
        self.name = name
        self.mode = mode
        self.emit = emit
        self.binary = bool(
            mode
            and (
                (mode.stream and mode.stream.format == "bin") or (mode.at_end and mode.at_end.format == "bin")
            )
        )
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.streamed = 0

    def chunk(self, data: bytes) -> None:
        if self.mode is None or self.mode.stream is None:
            return
        limit = self.mode.stream.limit
        if limit is not None:
            data = data[: max(0, limit - self.streamed)]
        if not data:
            return
        self.streamed += len(data)
        self.emit({self.name: list(data) if self.binary else self._decoder.decode(data)})

    def result(self, captured: bytes) -> str | list[int] | None:
        if self.mode is None:
            return None
        if self.mode.stream is not None:
            limit = self.mode.stream.limit
            kept = captured if limit is None else captured[:limit]
        else:
            kept = _at_end(captured, self.mode.at_end or AtEndCapture())
        return list(kept) if self.binary else kept.decode("utf-8", errors="replace")


def _at_end(data: bytes, capture: AtEndCapture) -> bytes:
    if capture.head is not None:
        return data[: capture.head]
    if capture.tail is not None:
        return data[-capture.tail :] if capture.tail else b""
    if capture.head_tail is not None:
        n = capture.head_tail
        return data if len(data) <= 2 * n else data[:n] + data[-n:]
    return data


class Activity:
    """One exe unit instance and the batches sent to it."""

    def __init__(
        self,
        activity_id: str,
        runtime: ExeUnitRuntime,
        transfers: TransferService,
        *,
        clock: Clock | None = None,
        settings: ExecutorSettings | None = None,
    ) -> None:
        self.activity_id = activity_id
        self.runtime = runtime
        self.transfers = transfers
        self.clock = clock or SystemClock()
        self.settings = settings or ExecutorSettings()
        self.state = ActivityState.INITIALIZED
        self.pending: ActivityState | None = None
        self.error_message: str | None = None
        self.batches: dict[str, Batch] = {}
        self._started = self.clock.monotonic()
        self._ended: float | None = None
        self._final_cpu = 0.0
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self.networks: tuple[NetworkAttachment, ...] = ()
        """The VPNs the activity joined at deploy (its address in each)."""
        self.terminated = asyncio.Event()
        """Set once the exe unit is gone (a ``terminate`` command or :meth:`destroy`)."""

    # -- public --------------------------------------------------------------------------------------

    def exec(self, commands: list[Command]) -> Batch:
        """Queue a batch; it runs after any batch already running. Returns at once."""
        if self.state is ActivityState.TERMINATED:
            raise ActivityStateError(f"activity {self.activity_id} is Terminated")
        batch = Batch(new_id(), commands)
        self.batches[batch.batch_id] = batch
        task = asyncio.create_task(self._run_batch(batch), name=f"batch-{batch.batch_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return batch

    def check_plan(self, commands: list[Command]) -> None:
        """Refuse a batch that cannot run from the state the activity will be in when it starts.

        That state is the current one advanced by the lifecycle commands still queued or running
        (as if they succeed). ``deploy`` needs Initialized, ``start`` Deployed, everything else
        Ready; a batch that breaks this order is refused whole, before anything runs, so a bad
        script changes nothing (the REST edge answers 400).
        """
        if self.state is ActivityState.TERMINATED:
            raise ActivityStateError(f"activity {self.activity_id} is Terminated")
        state: ActivityState = self.state
        for batch in self.batches.values():
            if not batch.finished:
                for queued in batch.commands[len(batch.results) :]:
                    state = _after(state, queued)
        for index, command in enumerate(commands):
            required = _required_state(command)
            if state is not required:
                name = next(iter(command_to_wire(command)))
                raise ExeScriptError(
                    f"command {index} ({name}) needs the activity {required.value}; it would be {state.value}"
                )
            state = _after(state, command)

    def state_wire(self) -> ActivityStateWire:
        return ActivityStateWire(state=(self.state, self.pending), error_message=self.error_message)

    def duration_seconds(self) -> float:
        end = self._ended if self._ended is not None else self.clock.monotonic()
        return end - self._started

    async def cpu_seconds(self) -> float:
        if self.state is ActivityState.TERMINATED:
            return self._final_cpu
        return await self.runtime.cpu_seconds()

    async def destroy(self) -> None:
        """Stop whatever runs, remove the exe unit; idempotent."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._terminate()

    # -- the executor --------------------------------------------------------------------------------

    async def _run_batch(self, batch: Batch) -> None:
        async with self._lock:
            with correlated(f"{self.activity_id}:{batch.batch_id}"):
                try:
                    async with asyncio.timeout(self.settings.batch_timeout):
                        for index, command in enumerate(batch.commands):
                            result = await self._run_command(batch, index, command)
                            batch.add_result(result)
                            if result.is_batch_finished:
                                return
                except TimeoutError:
                    index = len(batch.results)
                    message = f"batch timed out after {self.settings.batch_timeout:g} s"
                    self._finish(batch, index, 1, message)
                    batch.add_result(self._result(index, CommandOutcome.ERROR, message=message, last=True))
                except asyncio.CancelledError:
                    if not batch.finished:
                        index = len(batch.results)
                        self._finish(batch, index, 1, "activity destroyed")
                        batch.add_result(
                            self._result(index, CommandOutcome.ERROR, message="activity destroyed", last=True)
                        )
                    raise

    async def _run_command(self, batch: Batch, index: int, command: Command) -> ExeScriptCommandResult:
        last = index == len(batch.commands) - 1
        self._event(batch, index, {"started": {"command": command_to_wire(command)}})
        try:
            self._check_state(command)
            async with asyncio.timeout(self.settings.command_timeout):
                if isinstance(command, Run):
                    return await self._run(batch, index, command, last)
                await self._lifecycle(command)
        except TimeoutError:
            message = f"command timed out after {self.settings.command_timeout:g} s"
            self._finish(batch, index, 1, message)
            return self._result(index, CommandOutcome.ERROR, message=message, last=True)
        except ExeUnitError as exc:
            self._finish(batch, index, 1, str(exc))
            return self._result(index, CommandOutcome.ERROR, message=str(exc), last=True)
        self._finish(batch, index, 0, None)
        return self._result(index, CommandOutcome.OK, last=last)

    def _check_state(self, command: Command) -> None:
        required = _required_state(command)
        if self.state is not required:
            name = next(iter(command_to_wire(command)))
            raise ActivityStateError(f"{name} needs the activity {required.value}; it is {self.state.value}")

    async def _lifecycle(self, command: Command) -> None:
        if isinstance(command, Deploy):
            volumes = (
                tuple(command.volumes) if isinstance(command.volumes, list) else tuple(command.volumes or {})
            )
            networks = tuple(
                NetworkAttachment(net.id, net.network, vpn.parse_address(net.node_ip))
                for net in command.net or ()
            )
            options = DeployOptions(
                env=dict(command.env or {}), volumes=volumes, hostname=command.hostname, networks=networks
            )
            await self._transition(ActivityState.DEPLOYED, self.runtime.deploy(options))
            self.networks = networks
        elif isinstance(command, Start):
            await self._transition(ActivityState.READY, self.runtime.start(command.args))
        elif isinstance(command, Transfer):
            await self.transfers.transfer(command.from_, command.to, self.runtime.volumes())
        elif isinstance(command, Terminate):
            await self._terminate()
        elif isinstance(command, Sign):
            raise ActivityStateError("sign is not supported by this exe unit")

    async def _transition(self, target: ActivityState, work: Awaitable[None]) -> None:
        self.pending = target
        try:
            await work
        finally:
            self.pending = None
        self.state = activity_transition(self.state, target)

    async def _terminate(self) -> None:
        if self.state is ActivityState.TERMINATED:
            return
        with contextlib.suppress(ExeUnitError):
            self._final_cpu = await self.runtime.cpu_seconds()
        try:
            await self.runtime.terminate()
        finally:
            self.terminated.set()  # whatever uses the exe unit (VPN tunnels) lets go now
        self.state = activity_transition(self.state, ActivityState.TERMINATED)
        self._ended = self.clock.monotonic()

    async def _run(self, batch: Batch, index: int, command: Run, last: bool) -> ExeScriptCommandResult:
        capture = command.capture
        streams = {
            "stdout": _Output(
                "stdout", capture.stdout if capture else None, lambda k: self._event(batch, index, k)
            ),
            "stderr": _Output(
                "stderr", capture.stderr if capture else None, lambda k: self._event(batch, index, k)
            ),
        }

        def on_output(name: StreamName, data: bytes) -> None:
            streams[name].chunk(data)

        outcome: RunResult = await self.runtime.run(command.entry_point, command.args, on_output)
        notes = [outcome.message] if outcome.message else []
        for name, truncated in (("stdout", outcome.stdout_truncated), ("stderr", outcome.stderr_truncated)):
            if truncated:
                notes.append(f"{name} truncated at {len(getattr(outcome, name))} bytes")
        message = "; ".join(notes) or None
        self._finish(batch, index, outcome.return_code, message)
        failed = outcome.return_code != 0
        return self._result(
            index,
            CommandOutcome.ERROR if failed else CommandOutcome.OK,
            stdout=streams["stdout"].result(outcome.stdout),
            stderr=streams["stderr"].result(outcome.stderr),
            message=message if message or not failed else f"command exited with code {outcome.return_code}",
            last=last or failed,
        )

    # -- helpers -------------------------------------------------------------------------------------

    def _event(self, batch: Batch, index: int, kind: dict[str, Any]) -> None:
        # yagna's runtime events carry a naive UTC timestamp.
        stamp = self.clock.now().astimezone(UTC).replace(tzinfo=None).isoformat()
        batch.add_event(RuntimeEvent(batch_id=batch.batch_id, index=index, timestamp=stamp, kind=kind))

    def _finish(self, batch: Batch, index: int, return_code: int, message: str | None) -> None:
        self._event(batch, index, {"finished": {"return_code": return_code, "message": message}})

    def _result(
        self,
        index: int,
        outcome: CommandOutcome,
        *,
        stdout: str | list[int] | None = None,
        stderr: str | list[int] | None = None,
        message: str | None = None,
        last: bool,
    ) -> ExeScriptCommandResult:
        return ExeScriptCommandResult(
            index=index,
            event_date=self.clock.now(),
            result=outcome,
            stdout=stdout,
            stderr=stderr,
            message=message,
            is_batch_finished=last,
        )


def _required_state(command: Command) -> ActivityState:
    """The state a command needs: deploy and start are strictly ordered, everything else needs Ready."""
    if isinstance(command, Deploy):
        return ActivityState.INITIALIZED
    if isinstance(command, Start):
        return ActivityState.DEPLOYED
    return ActivityState.READY


def _after(state: ActivityState, command: Command) -> ActivityState:
    """The state once ``command`` has succeeded."""
    if isinstance(command, Deploy):
        return ActivityState.DEPLOYED
    if isinstance(command, Start):
        return ActivityState.READY
    if isinstance(command, Terminate):
        return ActivityState.TERMINATED
    return state
