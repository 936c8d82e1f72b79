"""The ``wasmtime`` runtime: WASI preview 1 commands run in-process under wasmtime.

Packages
--------
A package (``ActivitySpec.package_path``, already verified against its hash) is either

* a single binary module, recognised by its ``\\0asm`` magic. Its entry points are ``main`` and the
  package file's stem (``hello`` for ``hello.wasm``); both run the module's ``_start``; or
* a zip archive holding modules and a ``manifest.json`` at its root::

      {"entry_points": {
          "hello": {"wasm": "hello.wasm"},
          "count": {"wasm": "bin/tools.wasm", "args": ["--x"]}}}

  ``entry_points`` (required, at least one) maps each entry point's name (``[A-Za-z0-9][A-Za-z0-9._-]*``,
  at most 128 characters) to an object with ``wasm`` (required: the module's path inside the zip,
  ``/``-separated and relative, no ``..``) and ``args`` (optional list of strings put between
  ``argv[0]`` and the run's own arguments). Unknown keys are refused, so a typo is an error rather
  than a silently ignored setting. See :class:`PackageManifest`.

Every module must be a WASI command: it exports ``_start`` taking and returning nothing and
imports nothing but ``wasi_snapshot_preview1``. Packages are checked when the activity is created:
an unreadable file, a bad zip, a missing or invalid manifest, a manifest naming a file the zip does
not hold, a zip entry whose name escapes the archive (absolute, ``..``, backslashes), a module that
does not compile or is not a command all raise :class:`~exeunits.errors.PackageError`. Compiled
modules are kept by package hash in a small LRU in the factory, so repeated activities and runs
never recompile.

Runs
----
``run(entry_point, args, on_output)`` instantiates the entry point's module in a fresh ``Store``
with ``argv = [entry_point, *manifest args, *args]``, the deploy command's environment and the
activity's volumes preopened under their guest paths (``/golem/input`` read-only, ``/golem/output``,
``/golem/work`` and any extra ``DeployOptions.volumes`` read-write; their host folders live under
``<workdir>/volumes/``). It runs ``_start`` on a dedicated thread, so the event loop stays free, and
returns:

=========  ===============================================================================
exit code  when
=========  ===============================================================================
0 / n      ``_start`` returned / the module called ``proc_exit(n)`` (wasmtime accepts n < 126 and
           turns a larger status into a trap)
127        no such entry point (``message`` lists the package's entry points); nothing ran
134        the module trapped (``message`` names the trap, and says so when its memory had
           reached the memory limit)
137        stopped by the runtime: ``CPU time limit of N s exceeded``, or ``killed: ...`` when
           the activity was terminated or the factory closed during the run
=========  ===============================================================================

A module that cannot be instantiated at all (e.g. its initial memory exceeds the limit) raises
:class:`~exeunits.errors.RuntimeCommandError`: the command never started.

Limits and accounting
---------------------
* **CPU**: epoch interruption (cheaper than fuel: a load and compare at loop heads instead of a
  counter update per basic block). One ticker thread per engine bumps the epoch every
  ``epoch_tick_seconds`` while runs are in flight; every store asks to be called back on the next
  tick, and the callback, running on the run's own thread, measures that thread's CPU time
  (``time.thread_time()``, which covers the wasm code and its WASI calls) and traps the run once it
  exceeds ``limits.cpu_seconds`` (``default_cpu_seconds`` when unset). The bound is thus real CPU
  time, checked to within a tick; a module blocked in a host call (a WASI sleep) is not charged
  and is only stopped when it returns to wasm.
* **Memory**: ``Store.set_limits`` caps each linear memory at ``limits.memory_bytes`` (``memory.grow``
  returns -1 past it), and the store at one memory, one instance and a few bounded tables.
* **Output**: wasmtime writes stdout and stderr to two files under ``<workdir>/runs/`` (on the
  run's thread, so writing counts as the run's CPU time; wasmtime's custom-output callbacks would
  run on a thread of its own, cost ~45 µs per 4 KiB and escape the accounting). The event loop
  reads them every ``output_poll_seconds`` while the run goes on and once after it ends, and
  forwards what is new to ``on_output``, in order, before ``run`` returns. The first
  ``limits.output_cap_bytes`` of each stream are kept and forwarded; the rest is dropped and the
  result's ``*_truncated`` flag set, while the module is not told (its writes succeed, as they
  would into a file). A stream still writing past its cap has its file truncated to nothing
  whenever its blocks on disk exceed the cap by 1 MiB, so a module writing gigabytes holds little
  disk (the file turns sparse) and little memory until the CPU bound stops it. The files are
  removed when the run ends.
* **Cancellation**: cancelling the task awaiting ``run`` flags the run; the next epoch callback
  traps it, so it stops within a tick or two, and ``run`` waits for the thread to end before it
  re-raises ``CancelledError``, leaving no thread behind. ``terminate`` (and the factory's
  ``close``) stop a run the same way; that run then returns 137. A plain epoch deadline could not
  do this: compiled code caches the deadline, so lowering it from another thread takes effect
  only when the old one passes. A module blocked in a host call is stopped once it returns.
* **CPU accounting**: ``cpu_seconds()`` is the sum of each run's thread CPU time, including the
  share a run in flight has used so far (updated every tick).

The epoch callback is installed through ``wasmtime_store_epoch_deadline_callback`` of wasmtime's
C API, reached via the ``wasmtime`` package's ctypes bindings because the Python API does not wrap
it yet; the factory's ``start`` checks it is there and raises
:class:`~exeunits.errors.RuntimeUnavailableError` otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import enum
import functools
import logging
import os
import shutil
import threading
import time
import weakref
import zipfile
import zlib
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import Any, Literal

import wasmtime
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from wasmtime import _ffi as wasmtime_ffi

from exeunits.errors import (
    ActivityStateError,
    PackageError,
    RuntimeCommandError,
    RuntimeUnavailableError,
)
from exeunits.runtime.base import (
    ActivitySpec,
    DeployOptions,
    MiB,
    OutputCallback,
    ResourceLimits,
    RunResult,
    StreamName,
)

__all__ = [
    "EXIT_KILLED",
    "EXIT_TRAPPED",
    "EXIT_UNKNOWN_ENTRY_POINT",
    "EntryPointSpec",
    "PackageManifest",
    "WasmRuntime",
    "WasmRuntimeConfig",
    "WasmRuntimeFactory",
]

logger = logging.getLogger(__name__)

WASM_MAGIC = b"\0asm"
ZIP_MAGIC = b"PK"
MANIFEST_NAME = "manifest.json"
MAX_MANIFEST_BYTES = 1 * MiB

EXIT_UNKNOWN_ENTRY_POINT = 127
EXIT_TRAPPED = 134
EXIT_KILLED = 137

INPUT_VOLUME = "/golem/input"
OUTPUT_VOLUME = "/golem/output"
WORK_VOLUME = "/golem/work"
_STANDARD_VOLUMES = (INPUT_VOLUME, OUTPUT_VOLUME, WORK_VOLUME)
_READ_ONLY_VOLUMES = frozenset({INPUT_VOLUME})
_VOLUMES_FOLDER = "volumes"

_RUNS_FOLDER = "runs"
_STREAMS: tuple[StreamName, ...] = ("stdout", "stderr")
_READ_CHUNK = 1 * MiB
_TRIM_SLACK = 1 * MiB
"""How far past the cap a stream's file may grow on disk before it is truncated."""

_WASM_PAGE = 64 * 1024
_MAX_TABLES = 4
_MAX_TABLE_ELEMENTS = 1_000_000

StopReason = Literal["cpu", "cancelled", "terminated", "closed"]


# --- manifest ---------------------------------------------------------------------------------


def _package_relative_path(value: str) -> str:
    """``value`` normalised as a path inside a zip, or ValueError when it could point outside."""
    if not value or "\\" in value or "\0" in value or value.startswith("/"):
        raise ValueError("must be a relative path inside the package, with '/' separators")
    parts = [part for part in value.split("/") if part not in ("", ".")]
    if not parts or ".." in parts:
        raise ValueError("must name a file inside the package (no '..')")
    return "/".join(parts)


class EntryPointSpec(BaseModel):
    """One entry point of a zip package: the module it runs and the arguments it starts with."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    wasm: str = Field(max_length=1024)
    """Path of the module inside the zip (relative, ``/``-separated, no ``..``)."""
    args: tuple[str, ...] = ()
    """Arguments placed after ``argv[0]`` and before the run's own arguments."""

    @field_validator("wasm")
    @classmethod
    def _inside_package(cls, value: str) -> str:
        return _package_relative_path(value)

    @field_validator("args")
    @classmethod
    def _no_nul(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any("\0" in arg for arg in value):
            raise ValueError("arguments cannot contain NUL characters")
        return value


class PackageManifest(BaseModel):
    """``manifest.json`` of a zip package: entry point name → :class:`EntryPointSpec`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    entry_points: dict[str, EntryPointSpec] = Field(min_length=1)

    @field_validator("entry_points")
    @classmethod
    def _valid_names(cls, value: dict[str, EntryPointSpec]) -> dict[str, EntryPointSpec]:
        for name in value:
            if not _valid_entry_point_name(name):
                raise ValueError(
                    f"entry point name {name!r} must be 1-128 characters of letters, digits, "
                    "'.', '_' or '-', starting with a letter or digit"
                )
        return value


def _valid_entry_point_name(name: str) -> bool:
    return (
        0 < len(name) <= 128
        and name[0].isascii()
        and name[0].isalnum()
        and all(c.isascii() and (c.isalnum() or c in "._-") for c in name)
    )


# --- configuration ----------------------------------------------------------------------------


class WasmRuntimeConfig(BaseModel):
    """Settings of the ``wasmtime`` runtime (one engine per factory)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default_cpu_seconds: float = Field(default=60.0, gt=0)
    """CPU bound of a run whose agreement sets none (``ResourceLimits.cpu_seconds is None``)."""
    epoch_tick_seconds: float = Field(default=0.01, gt=0, le=1)
    """How often the epoch ticks: the granularity of the CPU bound and of cancellation."""
    output_poll_seconds: float = Field(default=0.02, gt=0, le=1)
    """How often a run's output files are read while it goes on (streaming latency)."""
    ticker_linger_seconds: float = Field(default=1.0, ge=0)
    """How long the epoch ticker keeps running after the last run ends, to spare restarts."""
    module_cache_size: int = Field(default=8, ge=1)
    """Compiled packages kept, least recently used evicted first."""
    max_module_bytes: int = Field(default=256 * MiB, gt=0)
    """Largest module accepted (also bounds what a zip entry may inflate to)."""
    cranelift_opt_level: Literal["none", "speed", "speed_and_size"] = "speed"


# --- package loading (worker threads) ---------------------------------------------------------


@dataclass(frozen=True)
class _CompiledPackage:
    modules: Mapping[str, wasmtime.InstancePre]
    """Module path in the package (``""`` for a bare module) → module ready to instantiate."""
    manifest: PackageManifest | None
    """``None`` for a bare module."""


@dataclass(frozen=True)
class _EntryPoint:
    name: str
    module_path: str
    pre: wasmtime.InstancePre
    args: tuple[str, ...]


def _describe(error: BaseException) -> str:
    """A one-line account of a wasmtime error: its headline and causes, without the backtrace."""
    text = str(error).strip()
    head, marker, causes = text.partition("Caused by:")
    headline = head.strip().splitlines()[0] if head.strip() else ""
    if not marker:
        return headline or type(error).__name__
    reasons = [line.strip().removeprefix("wasm trap: ") for line in causes.splitlines() if line.strip()]
    if headline.startswith("error while executing"):
        headline = ""  # the backtrace's title: says nothing the cause does not
    return ": ".join(part for part in (headline, "; ".join(reasons)) if part)


def _read_package(path: Path, max_module_bytes: int) -> tuple[dict[str, bytes], PackageManifest | None]:
    """The package's modules by path (``""`` for a bare module) and its manifest."""
    try:
        with path.open("rb") as file:
            head = file.read(4)
            if head == WASM_MAGIC:
                data = file.read(max_module_bytes + 1 - len(head))
                if len(head) + len(data) > max_module_bytes:
                    raise PackageError(f"module is larger than {max_module_bytes} bytes")
                return {"": head + data}, None
    except OSError as error:
        raise PackageError(f"cannot read package {path.name}: {error.strerror or error}") from error
    if not head.startswith(ZIP_MAGIC):
        raise PackageError(
            "package is neither a WebAssembly module (no \\0asm magic) nor a zip archive with a manifest"
        )
    try:
        with zipfile.ZipFile(path) as archive:
            return _read_zip(archive, max_module_bytes)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, NotImplementedError) as error:
        raise PackageError(f"package is not a valid zip archive: {error}") from error
    except OSError as error:
        raise PackageError(f"cannot read package {path.name}: {error.strerror or error}") from error


def _read_zip(
    archive: zipfile.ZipFile, max_module_bytes: int
) -> tuple[dict[str, bytes], PackageManifest | None]:
    members: dict[str, zipfile.ZipInfo] = {}
    for info in archive.infolist():
        try:
            name = _package_relative_path(info.filename.rstrip("/") if info.is_dir() else info.filename)
        except ValueError:
            raise PackageError(f"zip entry {info.filename!r} escapes the package") from None
        if not info.is_dir():
            members[name] = info
    manifest_info = members.get(MANIFEST_NAME)
    if manifest_info is None:
        raise PackageError(f"zip package has no {MANIFEST_NAME} at its root")
    if manifest_info.file_size > MAX_MANIFEST_BYTES:
        raise PackageError(f"{MANIFEST_NAME} is larger than {MAX_MANIFEST_BYTES} bytes")
    try:
        manifest = PackageManifest.model_validate_json(archive.read(manifest_info))
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc']) or '(root)'}: {problem['msg']}"
            for problem in error.errors()
        )
        raise PackageError(f"{MANIFEST_NAME} is invalid: {problems}") from None
    modules: dict[str, bytes] = {}
    for entry_name, entry in manifest.entry_points.items():
        if entry.wasm in modules:
            continue
        member = members.get(entry.wasm)
        if member is None:
            raise PackageError(
                f"entry point {entry_name!r} names {entry.wasm!r}, which is not in the package"
            )
        if member.file_size > max_module_bytes:
            raise PackageError(f"{entry.wasm} is larger than {max_module_bytes} bytes")
        data = archive.read(member)
        if not data.startswith(WASM_MAGIC):
            raise PackageError(f"{entry.wasm} is not a WebAssembly module (no \\0asm magic)")
        modules[entry.wasm] = data
    return modules, manifest


def _compile_module(
    engine: wasmtime.Engine, linker: wasmtime.Linker, label: str, data: bytes
) -> wasmtime.InstancePre:
    try:
        module = wasmtime.Module(engine, data)
    except wasmtime.WasmtimeError as error:
        raise PackageError(f"{label} does not compile: {_describe(error)}") from None
    start = next((export for export in module.exports if export.name == "_start"), None)
    start_type = start.type if start is not None else None
    if not isinstance(start_type, wasmtime.FuncType) or list(start_type.params) or list(start_type.results):
        raise PackageError(f"{label} is not a WASI command: it exports no `_start` function of no arguments")
    try:
        return linker.instantiate_pre(module)
    except wasmtime.WasmtimeError as error:
        raise PackageError(
            f"{label} imports something other than WASI preview 1: {_describe(error)}"
        ) from None


def _load_package(
    engine: wasmtime.Engine, linker: wasmtime.Linker, path: Path, max_module_bytes: int
) -> _CompiledPackage:
    modules, manifest = _read_package(path, max_module_bytes)
    compiled = {
        module_path: _compile_module(engine, linker, module_path or "module", data)
        for module_path, data in modules.items()
    }
    return _CompiledPackage(modules=compiled, manifest=manifest)


def _entry_points(package: _CompiledPackage, package_path: Path) -> dict[str, _EntryPoint]:
    if package.manifest is None:
        pre = package.modules[""]
        names = dict.fromkeys(["main", package_path.stem])
        return {name: _EntryPoint(name, "", pre, ()) for name in names if name}
    return {
        name: _EntryPoint(name, entry.wasm, package.modules[entry.wasm], entry.args)
        for name, entry in package.manifest.entry_points.items()
    }


# --- epoch ticker -----------------------------------------------------------------------------


class _EpochTicker:
    """Bumps one engine's epoch every tick while runs are in flight (and a little after).

    Runs ``acquire`` before they start and ``release`` when they end; the thread starts on demand
    and exits once no run has been in flight for ``linger`` seconds, so an idle provider does not
    wake a hundred times a second.
    """

    def __init__(self, engine: wasmtime.Engine, tick: float, linger: float) -> None:
        self._engine = engine
        self._tick = tick
        self._linger = linger
        self._lock = threading.Lock()
        self._active = 0
        self._idle_since = 0.0
        self._thread: threading.Thread | None = None
        self._stop: threading.Event | None = None
        self._closed = False

    def acquire(self) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeCommandError("the wasm runtime is shut down")
            self._active += 1
            if self._thread is None:
                stop = threading.Event()
                thread = threading.Thread(
                    target=self._run, args=(stop,), name="wasm-epoch-ticker", daemon=True
                )
                self._thread, self._stop = thread, stop
                thread.start()

    def release(self) -> None:
        with self._lock:
            self._active -= 1
            if self._active == 0:
                self._idle_since = time.monotonic()

    def close(self) -> None:
        """Stop the thread now (in-flight runs will no longer be interrupted) and wait for it."""
        with self._lock:
            self._closed = True
            thread, stop = self._thread, self._stop
            self._thread = self._stop = None
        if stop is not None:
            stop.set()
        if thread is not None:
            thread.join()

    @property
    def running(self) -> bool:
        with self._lock:
            return self._thread is not None

    def _run(self, stop: threading.Event) -> None:
        while not stop.wait(self._tick):
            self._engine.increment_epoch()
            with self._lock:
                if (
                    self._active == 0
                    and self._stop is stop
                    and time.monotonic() - self._idle_since >= self._linger
                ):
                    self._thread = self._stop = None
                    return


# --- one run (shared between the event loop and the run's thread) -----------------------------


class _RunControl:
    """A run's stop flag and CPU meter.

    ``cancel`` is called from the event loop; everything else runs on the run's thread. The
    attributes crossing threads are single references, assigned atomically under the GIL.
    """

    def __init__(self, cpu_limit: float) -> None:
        self.cpu_limit = cpu_limit
        self.cpu_seconds = 0.0
        self.stop_reason: StopReason | None = None
        self._requested: StopReason | None = None
        self._started_at: float | None = None

    def cancel(self, reason: StopReason) -> None:
        if self._requested is None:
            self._requested = reason

    def begin(self) -> None:
        self._started_at = time.thread_time()

    def measure(self) -> None:
        if self._started_at is not None:
            self.cpu_seconds = time.thread_time() - self._started_at

    def keep_going(self) -> bool:
        """Called on every epoch tick by the run's thread: False stops the module."""
        self.measure()
        if self._requested is not None:
            self.stop_reason = self._requested
        elif self.cpu_seconds > self.cpu_limit:
            self.stop_reason = "cpu"
        return self.stop_reason is None

    def stopped_early(self) -> bool:
        """Whether a stop was asked before the module started (then it is not started at all)."""
        if self._requested is not None:
            self.stop_reason = self._requested
        return self.stop_reason is not None


# ctypes type of wasmtime's epoch deadline callback: (context, env, *delta, *update_kind) -> error*.
_EpochDeadlineCallback = ctypes.CFUNCTYPE(
    ctypes.c_size_t,
    ctypes.POINTER(wasmtime_ffi.wasmtime_context_t),
    ctypes.c_void_p,
    ctypes.POINTER(ctypes.c_uint64),
    ctypes.POINTER(ctypes.c_uint8),
)
_NO_FINALIZER = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_UPDATE_DEADLINE_CONTINUE = 0


def _epoch_callback_available() -> bool:
    return hasattr(wasmtime_ffi, "wasmtime_store_epoch_deadline_callback") and hasattr(
        wasmtime_ffi, "wasmtime_error_new"
    )


class _EpochHook:
    """Asks ``store`` to call ``control.keep_going`` on every epoch tick, and to trap when it says no.

    Keep the hook referenced while the store runs code: it owns the ctypes trampoline.
    """

    def __init__(self, store: wasmtime.Store, control: _RunControl) -> None:
        self._control = control
        self._callback = _EpochDeadlineCallback(self._on_deadline)
        wasmtime_ffi.wasmtime_store_epoch_deadline_callback(
            store.ptr(), self._callback, None, _NO_FINALIZER()
        )
        store.set_epoch_deadline(1)

    def _on_deadline(self, _context: Any, _env: Any, delta: Any, update_kind: Any) -> int:
        try:
            if self._control.keep_going():
                delta[0] = 1
                update_kind[0] = _UPDATE_DEADLINE_CONTINUE
                return 0
            message = f"stopped by the runtime ({self._control.stop_reason})"
        except BaseException as error:  # never let an exception unwind into wasmtime
            message = f"epoch callback failed: {error!r}"
        trap = wasmtime_ffi.wasmtime_error_new(message.encode())
        return ctypes.cast(trap, ctypes.c_void_p).value or 0


class _OutputTail:
    """Follows a run's stdout and stderr files, keeping and forwarding at most ``cap`` bytes of each.

    wasmtime writes the module's output straight to two files in the activity's runs folder (on the run's
    thread, so the writes count as the run's CPU time); the event loop calls :meth:`poll` every
    few milliseconds while the run goes on and once after it ends. Each call reads what is new,
    up to the cap, and hands it to ``on_output`` in the order it was written. Past the cap, output
    is dropped: a stream that keeps writing has its file truncated to nothing whenever its blocks
    on disk exceed the cap by :data:`_TRIM_SLACK`, so a module writing gigabytes occupies little
    disk (the file becomes sparse) until the CPU bound stops it.
    """

    def __init__(self, folder: Path, on_output: OutputCallback, cap: int) -> None:
        self._on_output = on_output
        self._cap = max(cap, 0)
        self.paths: dict[StreamName, Path] = {s: folder / s for s in _STREAMS}
        self._fds: dict[StreamName, int] = {}
        self._kept: dict[StreamName, bytearray] = {s: bytearray() for s in _STREAMS}
        self.truncated: dict[StreamName, bool] = {s: False for s in _STREAMS}
        self._forwarding = True
        folder.mkdir(parents=True, exist_ok=True)
        for stream, path in self.paths.items():
            # Made here, read from here: wasmtime reopens them for writing (its truncation of an
            # empty file changes nothing), so this descriptor follows what the module writes.
            path.unlink(missing_ok=True)  # left by a run that crashed the process
            self._fds[stream] = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o600)

    def poll(self) -> None:
        for stream in _STREAMS:
            self._poll_stream(stream)

    def _poll_stream(self, stream: StreamName) -> None:
        try:
            self._follow(stream)
        except OSError as error:
            raise RuntimeCommandError(f"cannot read the run's {stream}: {error}") from error

    def _follow(self, stream: StreamName) -> None:
        fd, kept = self._fds[stream], self._kept[stream]
        while len(kept) < self._cap:
            data = os.read(fd, min(self._cap - len(kept), _READ_CHUNK))
            if not data:
                return
            kept += data
            if self._forwarding:
                try:
                    self._on_output(stream, data)
                except Exception:
                    logger.exception("output callback failed on %d bytes of %s", len(data), stream)
        status = os.fstat(fd)
        if status.st_size > len(kept):
            self.truncated[stream] = True
            if status.st_blocks * 512 > self._cap + _TRIM_SLACK:
                os.truncate(self.paths[stream], 0)

    def stop_forwarding(self) -> None:
        """The run was cancelled: its caller wants no more output."""
        self._forwarding = False

    def captured(self, stream: StreamName) -> bytes:
        return bytes(self._kept[stream])

    def close(self) -> None:
        """Close and remove the files."""
        for stream, fd in self._fds.items():
            os.close(fd)
            self.paths[stream].unlink(missing_ok=True)
        self._fds.clear()


@dataclass(frozen=True)
class _Job:
    """Everything the run's thread needs; built on the loop, read-only afterwards."""

    engine: wasmtime.Engine
    entry: _EntryPoint
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    preopens: tuple[tuple[str, Path, bool], ...]
    """(guest path, host folder, writable)."""
    limits: ResourceLimits
    stdout_path: Path
    stderr_path: Path
    control: _RunControl


@dataclass(frozen=True)
class _Outcome:
    return_code: int
    message: str | None = None


def _stopped(reason: StopReason, cpu_limit: float) -> _Outcome:
    messages: dict[StopReason, str] = {
        "cpu": f"CPU time limit of {cpu_limit:g} s exceeded",
        "cancelled": "killed: the command was cancelled",
        "terminated": "killed: the activity was terminated",
        "closed": "killed: the runtime was shut down",
    }
    return _Outcome(EXIT_KILLED, messages[reason])


def _execute(job: _Job) -> _Outcome:
    """Run one command to completion on the current thread."""
    control = job.control
    control.begin()
    try:
        if control.stopped_early():
            assert control.stop_reason is not None
            return _stopped(control.stop_reason, control.cpu_limit)
        wasi = wasmtime.WasiConfig()
        wasi.argv = list(job.argv)
        wasi.env = [list(pair) for pair in job.env]
        try:
            wasi.stdout_file = str(job.stdout_path)
            wasi.stderr_file = str(job.stderr_path)
        except wasmtime.WasmtimeError as error:
            raise RuntimeCommandError(f"cannot open the run's output files: {_describe(error)}") from None
        for guest, host, writable in job.preopens:
            try:
                wasi.preopen_dir(str(host), guest, fs_mutable=writable)
            except wasmtime.WasmtimeError as error:
                raise RuntimeCommandError(
                    f"cannot open volume {guest} ({host}): {_describe(error)}"
                ) from None
        store = wasmtime.Store(job.engine)
        store.set_wasi(wasi)
        store.set_limits(
            memory_size=job.limits.memory_bytes,
            table_elements=_MAX_TABLE_ELEMENTS,
            instances=1,
            tables=_MAX_TABLES,
            memories=1,
        )
        hook = _EpochHook(store, control)
        try:
            instance = job.entry.pre.instantiate(store)
        except (wasmtime.WasmtimeError, wasmtime.Trap) as error:
            if control.stop_reason is not None:
                return _stopped(control.stop_reason, control.cpu_limit)
            raise RuntimeCommandError(
                f"cannot instantiate entry point {job.entry.name!r}: {_describe(error)}"
            ) from None
        exports = instance.exports(store)
        start = exports["_start"]
        assert isinstance(start, wasmtime.Func)
        try:
            start(store)
        except wasmtime.ExitTrap as exit_trap:
            return _Outcome(exit_trap.code)
        except (wasmtime.WasmtimeError, wasmtime.Trap) as error:
            if control.stop_reason is not None:
                return _stopped(control.stop_reason, control.cpu_limit)
            message = f"trap: {_describe(error)}"
            memory = exports.get("memory")
            if (
                isinstance(memory, wasmtime.Memory)
                and memory.data_len(store) + _WASM_PAGE > job.limits.memory_bytes
            ):
                message += f" (memory limit of {job.limits.memory_bytes / MiB:g} MiB reached)"
            return _Outcome(EXIT_TRAPPED, message)
        finally:
            del hook
        return _Outcome(0)
    finally:
        control.measure()


def _run_on_thread(job: _Job, loop: asyncio.AbstractEventLoop, done: asyncio.Future[_Outcome]) -> None:
    outcome: _Outcome | None = None
    failure: Exception | None = None
    try:
        outcome = _execute(job)
    except Exception as error:
        failure = error
    except BaseException as error:
        failure = RuntimeCommandError(f"wasm run aborted: {error!r}")

    def settle() -> None:
        if done.done():
            return
        if failure is not None:
            done.set_exception(failure)
        else:
            assert outcome is not None
            done.set_result(outcome)

    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
        loop.call_soon_threadsafe(settle)


async def _wait_through_cancellation(done: asyncio.Future[_Outcome]) -> None:
    """Wait for ``done`` even if the awaiting task is cancelled again meanwhile."""
    while not done.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(done)
    if not done.cancelled():
        done.exception()  # mark it retrieved: a cancelled caller does not want it


@dataclass(frozen=True)
class _ActiveRun:
    control: _RunControl
    done: asyncio.Future[_Outcome]


# --- the exe unit -----------------------------------------------------------------------------


class _State(enum.Enum):
    CREATED = "created"
    """The package is compiled; no folder exists yet."""
    DEPLOYED = "deployed"
    """The volumes' host folders exist; the environment is set."""
    STARTED = "started"
    """Commands may run."""
    TERMINATED = "terminated"
    """Folders removed; nothing more may happen."""


@dataclass(frozen=True)
class _Backend:
    engine: wasmtime.Engine
    ticker: _EpochTicker
    config: WasmRuntimeConfig


def _check_guest_path(path: str) -> str:
    pure = PurePosixPath(path)
    if not pure.is_absolute() or ".." in pure.parts or str(pure) == "/" or "\0" in path:
        raise RuntimeCommandError(f"volume {path!r} must be an absolute path below / without '..'")
    return str(pure)


class WasmRuntime:
    """One activity's WebAssembly exe unit; see the module docstring for what each command does."""

    def __init__(
        self,
        backend: _Backend,
        spec: ActivitySpec,
        entry_points: Mapping[str, _EntryPoint],
        on_terminated: Callable[[WasmRuntime], None],
    ) -> None:
        self._backend = backend
        self._spec = spec
        self._entry_points = dict(entry_points)
        self._on_terminated = on_terminated
        self._state = _State.CREATED
        self._volumes: dict[str, Path] = {}
        self._env: tuple[tuple[str, str], ...] = ()
        self._active: _ActiveRun | None = None
        self._cpu_seconds = 0.0

    @property
    def activity_id(self) -> str:
        return self._spec.activity_id

    @property
    def entry_points(self) -> list[str]:
        """Names ``run`` accepts."""
        return sorted(self._entry_points)

    def _require(self, state: _State, command: str) -> None:
        if self._state is not state:
            raise ActivityStateError(
                f"{command} is not allowed when the wasm exe unit is {self._state.value}"
            )

    async def deploy(self, options: DeployOptions) -> None:
        """Make the volumes' host folders and keep the environment for later runs."""
        self._require(_State.CREATED, "deploy")
        if options.networks:
            raise RuntimeCommandError("the wasmtime runtime has no network: a VPN needs the vm runtime")
        for key, value in options.env.items():
            if not key or "=" in key or "\0" in key or "\0" in value:
                raise RuntimeCommandError(f"invalid environment variable {key!r}")
        guests = dict.fromkeys([*_STANDARD_VOLUMES, *(_check_guest_path(v) for v in options.volumes)])
        root = self._spec.workdir / _VOLUMES_FOLDER
        volumes = {guest: root / guest.lstrip("/") for guest in guests}
        try:
            for host in volumes.values():
                host.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise RuntimeCommandError(f"cannot create the activity's volumes: {error}") from error
        self._volumes = volumes
        self._env = tuple(options.env.items())
        self._state = _State.DEPLOYED
        logger.debug("activity %s: wasm volumes under %s", self.activity_id, root)

    async def start(self, args: list[str]) -> None:
        """Nothing to start for WebAssembly: modules are instantiated per run."""
        self._require(_State.DEPLOYED, "start")
        if args:
            logger.info("activity %s: wasm start ignores its arguments %r", self.activity_id, args)
        self._state = _State.STARTED

    async def run(self, entry_point: str, args: list[str], on_output: OutputCallback) -> RunResult:
        """Run ``entry_point`` once, streaming its output; see the module docstring for exit codes."""
        self._require(_State.STARTED, "run")
        if self._active is not None:
            raise ActivityStateError("a command is already running in this activity")
        entry = self._entry_points.get(entry_point)
        if entry is None:
            return RunResult(
                return_code=EXIT_UNKNOWN_ENTRY_POINT,
                message=(
                    f"unknown entry point {entry_point!r}; this package has: {', '.join(self.entry_points)}"
                ),
            )
        argv = (entry_point, *entry.args, *args)
        if any("\0" in arg for arg in argv):
            raise RuntimeCommandError("arguments cannot contain NUL characters")
        config = self._backend.config
        limits = self._spec.limits
        cpu_limit = limits.cpu_seconds if limits.cpu_seconds is not None else config.default_cpu_seconds
        try:
            # Runs of one activity never overlap, so they can share one folder.
            tail = _OutputTail(self._spec.workdir / _RUNS_FOLDER, on_output, limits.output_cap_bytes)
        except OSError as error:
            raise RuntimeCommandError(f"cannot prepare the run's output files: {error}") from error
        control = _RunControl(cpu_limit)
        job = _Job(
            engine=self._backend.engine,
            entry=entry,
            argv=argv,
            env=self._env,
            preopens=tuple(
                (guest, host, guest not in _READ_ONLY_VOLUMES) for guest, host in self._volumes.items()
            ),
            limits=limits,
            stdout_path=tail.paths["stdout"],
            stderr_path=tail.paths["stderr"],
            control=control,
        )
        loop = asyncio.get_running_loop()
        done: asyncio.Future[_Outcome] = loop.create_future()
        thread = threading.Thread(
            target=_run_on_thread, args=(job, loop, done), name=f"wasm-run-{self.activity_id}", daemon=True
        )
        self._active = _ActiveRun(control, done)
        try:
            self._backend.ticker.acquire()
            try:
                thread.start()
                try:
                    while not done.done():
                        await asyncio.wait((done,), timeout=config.output_poll_seconds)
                        tail.poll()
                except BaseException:  # cancelled, or the output could not be read
                    tail.stop_forwarding()
                    control.cancel("cancelled")
                    await _wait_through_cancellation(done)
                    raise
                finally:
                    # The thread's last act was to hand over its result: this join is immediate.
                    thread.join()
            finally:
                self._backend.ticker.release()
            outcome = done.result()
            tail.poll()
        finally:
            self._cpu_seconds += control.cpu_seconds
            self._active = None
            tail.close()
        logger.debug(
            "activity %s: %s exited %d after %.3f s of CPU",
            self.activity_id,
            entry_point,
            outcome.return_code,
            control.cpu_seconds,
        )
        return RunResult(
            return_code=outcome.return_code,
            stdout=tail.captured("stdout"),
            stderr=tail.captured("stderr"),
            stdout_truncated=tail.truncated["stdout"],
            stderr_truncated=tail.truncated["stderr"],
            message=outcome.message,
        )

    def volumes(self) -> dict[str, Path]:
        """Guest path → host folder, once deployed (empty before)."""
        return dict(self._volumes)

    async def cpu_seconds(self) -> float:
        """CPU time of the activity's runs: each run thread's CPU time, the one in flight included."""
        active = self._active
        return self._cpu_seconds + (active.control.cpu_seconds if active is not None else 0.0)

    async def interrupt(self, reason: StopReason = "terminated") -> None:
        """Stop the run in flight, if any, and wait until its thread has ended."""
        active = self._active
        if active is not None:
            active.control.cancel(reason)
            await _wait_through_cancellation(active.done)

    async def terminate(self) -> None:
        """Stop the run in flight, remove the volumes' and runs' host folders; idempotent."""
        if self._state is _State.TERMINATED:
            return
        self._state = _State.TERMINATED
        await self.interrupt("terminated")
        self._on_terminated(self)
        self._volumes = {}
        for folder in (_VOLUMES_FOLDER, _RUNS_FOLDER):
            await asyncio.to_thread(shutil.rmtree, self._spec.workdir / folder, ignore_errors=True)
        logger.debug("activity %s: wasm exe unit terminated", self.activity_id)


# --- the factory ------------------------------------------------------------------------------


class WasmRuntimeFactory:
    """Makes ``wasmtime`` exe units; owns the engine, the compiled-package cache and the ticker.

    Use as ``async with WasmRuntimeFactory() as factory:`` or call ``start``/``close``. ``create``
    starts the factory if needed.
    """

    name: str = "wasmtime"

    def __init__(self, *, config: WasmRuntimeConfig | None = None) -> None:
        self._config = config or WasmRuntimeConfig()
        self._backend: _Backend | None = None
        self._linker: wasmtime.Linker | None = None
        self._cache: OrderedDict[str, _CompiledPackage] = OrderedDict()
        self._compiling: dict[str, asyncio.Task[_CompiledPackage]] = {}
        self._runtimes: weakref.WeakSet[WasmRuntime] = weakref.WeakSet()
        self._compilations = 0

    @property
    def config(self) -> WasmRuntimeConfig:
        return self._config

    @property
    def compilations(self) -> int:
        """How many packages were compiled (cache misses) since the factory was made."""
        return self._compilations

    @property
    def ticker_running(self) -> bool:
        return self._backend is not None and self._backend.ticker.running

    async def start(self) -> None:
        """Build the engine, checking this ``wasmtime`` offers what the runtime needs; idempotent."""
        if self._backend is not None:
            return
        if not _epoch_callback_available():
            raise RuntimeUnavailableError(
                "the installed wasmtime package does not expose epoch deadline callbacks; "
                f"upgrade it (found {_wasmtime_version()})"
            )
        try:
            engine_config = wasmtime.Config()
            engine_config.epoch_interruption = True
            engine_config.cranelift_opt_level = self._config.cranelift_opt_level
            engine = wasmtime.Engine(engine_config)
            linker = wasmtime.Linker(engine)
            linker.define_wasi()
        except wasmtime.WasmtimeError as error:
            raise RuntimeUnavailableError(f"cannot set up wasmtime: {_describe(error)}") from error
        ticker = _EpochTicker(engine, self._config.epoch_tick_seconds, self._config.ticker_linger_seconds)
        self._backend = _Backend(engine=engine, ticker=ticker, config=self._config)
        self._linker = linker

    async def create(self, spec: ActivitySpec) -> WasmRuntime:
        """Check and compile (or find in the cache) the activity's package; make its exe unit."""
        await self.start()
        assert self._backend is not None
        package = await self._package(spec)
        runtime = WasmRuntime(
            self._backend, spec, _entry_points(package, spec.package_path), self._runtimes.discard
        )
        self._runtimes.add(runtime)
        return runtime

    async def close(self) -> None:
        """Stop every run in flight, the ticker and pending compilations; drop the cache."""
        backend = self._backend
        if backend is None:
            return
        for runtime in list(self._runtimes):
            await runtime.interrupt("closed")
        for task in list(self._compiling.values()):
            task.cancel()
        self._compiling.clear()
        backend.ticker.close()
        self._cache.clear()
        self._backend = None
        self._linker = None

    async def __aenter__(self) -> WasmRuntimeFactory:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def _package(self, spec: ActivitySpec) -> _CompiledPackage:
        key = spec.package_hash
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        task = self._compiling.get(key)
        if task is None:
            assert self._backend is not None and self._linker is not None
            task = asyncio.create_task(
                asyncio.to_thread(
                    _load_package,
                    self._backend.engine,
                    self._linker,
                    spec.package_path,
                    self._config.max_module_bytes,
                ),
                name=f"wasm-compile-{key[:16]}",
            )
            self._compiling[key] = task
            task.add_done_callback(functools.partial(self._compiled, key))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if task.cancelled() and current is not None and not current.cancelling():
                raise RuntimeUnavailableError(
                    "the wasm runtime was closed while compiling the package"
                ) from None
            raise

    def _compiled(self, key: str, task: asyncio.Task[_CompiledPackage]) -> None:
        if self._compiling.get(key) is task:
            del self._compiling[key]
        if task.cancelled() or task.exception() is not None:
            return
        self._compilations += 1
        self._cache[key] = task.result()
        while len(self._cache) > self._config.module_cache_size:
            self._cache.popitem(last=False)


def _wasmtime_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("wasmtime")
    except PackageNotFoundError:
        return "unknown version"
