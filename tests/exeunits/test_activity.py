"""The batch executor and activity state machine, driven through a scripted in-memory runtime.

The real runtimes are tested against Docker and wasmtime in ``docker/`` and ``wasm/``; here the
runtime is a fake so the executor's own rules (ordering, state, timeouts, capture, events) are
checked exactly.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from exeunits.activity import Activity, ExecutorSettings
from exeunits.runtime.base import DeployOptions, OutputCallback, RunResult
from exeunits.script import ActivityState, CommandOutcome, parse_exescript
from exeunits.transfer import TransferService


class ScriptedRuntime:
    """Answers ``run`` by entry point: ``echo`` prints its args, ``fail`` exits 3, ``hang`` sleeps."""

    def __init__(self, root: Path) -> None:
        self.calls: list[str] = []
        self.root = root
        self.terminated = False
        self.hung: asyncio.Event = asyncio.Event()

    async def deploy(self, options: DeployOptions) -> None:
        self.calls.append(f"deploy {sorted(options.env.items())}")
        (self.root / "in").mkdir(exist_ok=True)

    async def start(self, args: list[str]) -> None:
        self.calls.append("start")

    async def run(self, entry_point: str, args: list[str], on_output: OutputCallback) -> RunResult:
        self.calls.append(f"run {entry_point}")
        if entry_point == "echo":
            text = (" ".join(args) + "\n").encode()
            on_output("stdout", text[:3])
            await asyncio.sleep(0)
            on_output("stdout", text[3:])
            on_output("stderr", b"note\n")
            return RunResult(0, stdout=text, stderr=b"note\n")
        if entry_point == "fail":
            on_output("stderr", b"boom\n")
            return RunResult(3, stderr=b"boom\n")
        if entry_point == "flood":
            return RunResult(0, stdout=b"y" * 10, stdout_truncated=True)
        self.hung.set()
        await asyncio.sleep(3600)
        return RunResult(0)

    def volumes(self) -> dict[str, Path]:
        return {"/golem/input": self.root / "in"}

    async def cpu_seconds(self) -> float:
        return 1.5

    async def terminate(self) -> None:
        self.terminated = True
        self.calls.append("terminate")


def make(tmp_path: Path, **settings: float) -> tuple[Activity, ScriptedRuntime]:
    runtime = ScriptedRuntime(tmp_path)
    activity = Activity(
        "act-1", runtime, TransferService(allow_local_files=True), settings=ExecutorSettings(**settings)
    )
    return activity, runtime


INIT = '[{"deploy": {"env": {"A": "1"}}}, {"start": {}}]'
STREAM = '{"stdout": {"stream": {}}, "stderr": {"stream": {}}}'


async def test_init_run_terminate_with_streamed_events(tmp_path: Path) -> None:
    activity, runtime = make(tmp_path)
    init = activity.exec(parse_exescript(INIT))
    results = await init.wait_results(timeout=5)
    assert [r.result for r in results] == [CommandOutcome.OK, CommandOutcome.OK]
    assert results[-1].is_batch_finished and activity.state is ActivityState.READY
    run = f'{{"run": {{"entry_point": "echo", "args": ["hello", "world"], "capture": {STREAM}}}}}'
    script = f'[{run}, {{"terminate": {{}}}}]'
    batch = activity.exec(parse_exescript(script))
    kinds = [(e.index, next(iter(e.kind))) for e in [e async for e in batch.follow()]]
    assert kinds == [
        (0, "started"),
        (0, "stdout"),
        (0, "stdout"),
        (0, "stderr"),
        (0, "finished"),
        (1, "started"),
        (1, "finished"),
    ]
    texts = [e.kind["stdout"] for e in batch.events if "stdout" in e.kind]
    assert "".join(texts) == "hello world\n"
    finished = batch.events[4].kind["finished"]
    assert finished == {"return_code": 0, "message": None}
    assert batch.results[0].stdout == "hello world\n" and batch.results[0].stderr == "note\n"
    assert batch.results[1].is_batch_finished and not batch.results[0].is_batch_finished
    assert activity.state is ActivityState.TERMINATED and runtime.terminated
    assert runtime.calls == ["deploy [('A', '1')]", "start", "run echo", "terminate"]
    assert await activity.cpu_seconds() == 1.5


async def test_failure_stops_the_batch_with_exit_code_and_stderr(tmp_path: Path) -> None:
    activity, runtime = make(tmp_path)
    await activity.exec(parse_exescript(INIT)).wait_results(timeout=5)
    script = (
        f'[{{"run": {{"entry_point": "fail", "capture": {STREAM}}}}}, {{"run": {{"entry_point": "echo"}}}}]'
    )
    results = await activity.exec(parse_exescript(script)).wait_results(timeout=5)
    assert len(results) == 1
    (failed,) = results
    assert failed.result is CommandOutcome.ERROR and failed.is_batch_finished
    assert failed.stderr == "boom\n" and "exited with code 3" in (failed.message or "")
    assert runtime.calls.count("run echo") == 0


async def test_state_rules(tmp_path: Path) -> None:
    activity, runtime = make(tmp_path)
    results = await activity.exec(parse_exescript('[{"run": {"entry_point": "echo"}}]')).wait_results(
        timeout=5
    )
    assert results[0].result is CommandOutcome.ERROR and "needs the activity Ready" in (
        results[0].message or ""
    )
    results = await activity.exec(parse_exescript('[{"start": {}}]')).wait_results(timeout=5)
    assert "needs the activity Deployed" in (results[0].message or "")
    await activity.exec(parse_exescript(INIT)).wait_results(timeout=5)
    results = await activity.exec(parse_exescript('[{"deploy": {}}]')).wait_results(timeout=5)
    assert "needs the activity Initialized" in (results[0].message or "")
    assert runtime.calls == ["deploy [('A', '1')]", "start"]


async def test_command_timeout(tmp_path: Path) -> None:
    activity, _ = make(tmp_path, command_timeout=0.2)
    await activity.exec(parse_exescript(INIT)).wait_results(timeout=5)
    results = await activity.exec(parse_exescript('[{"run": {"entry_point": "hang"}}]')).wait_results(
        timeout=5
    )
    assert results[0].result is CommandOutcome.ERROR and "timed out after 0.2 s" in (results[0].message or "")
    assert activity.state is ActivityState.READY


async def test_poll_semantics(tmp_path: Path) -> None:
    activity, runtime = make(tmp_path)
    await activity.exec(parse_exescript(INIT)).wait_results(timeout=5)
    batch = activity.exec(
        parse_exescript('[{"run": {"entry_point": "echo"}}, {"run": {"entry_point": "hang"}}]')
    )
    await asyncio.wait_for(runtime.hung.wait(), 5)
    # Without commandIndex a timed-out poll returns what has finished; with one it raises.
    partial = await batch.wait_results(timeout=0.05)
    assert [r.index for r in partial] == [0]
    with pytest.raises(TimeoutError):
        await batch.wait_results(command_index=1, timeout=0.05)
    assert [r.index for r in await batch.wait_results(command_index=0)] == [0]
    await activity.destroy()
    final = await batch.wait_results(timeout=1)
    assert final[-1].result is CommandOutcome.ERROR and final[-1].message == "activity destroyed"
    assert activity.state is ActivityState.TERMINATED and runtime.terminated


async def test_capture_modes(tmp_path: Path) -> None:
    activity, _ = make(tmp_path)
    await activity.exec(parse_exescript(INIT)).wait_results(timeout=5)
    script = (
        '[{"run": {"entry_point": "echo", "args": ["abcdefgh"], "capture": '
        '{"stdout": {"atEnd": {"tail": 4}}, "stderr": {"stream": {"limit": 2, "format": "bin"}}}}},'
        ' {"run": {"entry_point": "echo", "args": ["quiet"]}},'
        ' {"run": {"entry_point": "flood", "capture": {"stdout": {"atEnd": {}}}}}]'
    )
    batch = activity.exec(parse_exescript(script))
    results = await batch.wait_results(timeout=5)
    assert results[0].stdout == "fgh\n" and results[0].stderr == list(b"no")
    assert [e.kind for e in batch.events if "stderr" in e.kind] == [{"stderr": list(b"no")}]
    assert results[1].stdout is None and results[1].stderr is None  # no capture: discarded
    assert results[2].result is CommandOutcome.OK and "stdout truncated at 10 bytes" in (
        results[2].message or ""
    )


async def test_transfer_through_volumes_and_refusals(tmp_path: Path) -> None:
    activity, _ = make(tmp_path)
    await activity.exec(parse_exescript(INIT)).wait_results(timeout=5)
    source = tmp_path / "local.txt"
    source.write_text("payload")
    script = (
        f'[{{"transfer": {{"from": "file://{source}", "to": "container:/golem/input/a.txt"}}}},'
        f' {{"transfer": {{"from": "container:/golem/input/a.txt", "to": "container:/golem/input/b.txt"}}}}]'
    )
    results = await activity.exec(parse_exescript(script)).wait_results(timeout=5)
    assert [r.result for r in results] == [CommandOutcome.OK, CommandOutcome.OK]
    assert (tmp_path / "in" / "b.txt").read_text() == "payload"
    escape = json.dumps(
        [{"transfer": {"from": "container:/golem/input/../../etc/passwd", "to": "container:/golem/input/x"}}]
    )
    results = await activity.exec(parse_exescript(escape)).wait_results(timeout=5)
    assert results[0].result is CommandOutcome.ERROR and "not inside a volume" in (results[0].message or "")
    assert not (tmp_path / "in" / "x").exists()
