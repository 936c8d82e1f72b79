"""The ``vm`` runtime: one hardened Docker container per activity.

A package is a ``docker save`` archive. :class:`DockerRuntimeFactory` loads each package once per
sha3-224, tags it ``golem-pkg:<hash>`` so later activities (and later runs of the provider) reuse it,
and evicts the least recently used package images over a size cap. :class:`DockerRuntime` is one
activity: ``deploy`` creates the container, ``start`` starts it, each ``run`` is a ``docker exec``
whose output is streamed as it comes, and ``terminate`` removes the container and its folders.

Choices worth knowing:

* **Keep-alive.** The container must outlive every command, but an image need not contain a
  long-running program (or even ``sleep``). Debian's static busybox is bind-mounted read-only at
  ``/.golem/busybox`` and the container's only process is ``/.golem/busybox sleep 2147483647``
  under ``docker-init`` (``init=True``), which also reaps whatever background processes a ``run``
  leaves behind. Being static, the helper works in any image, whatever its libc.
* **Hardening.** No network (``network_mode="none"``), every capability dropped,
  ``no-new-privileges``, pids/memory/CPU limits from the agreement with swap disabled, and nothing
  mounted but the activity's own folders and the read-only helper.
* **VPN.** An activity that joined a VPN at deploy (allowed only when the agreed offer lists the
  ``vpn`` capability) still gets no network interface. :meth:`DockerRuntime.connect` reaches one of
  its TCP ports by exec'ing the helper's ``nc`` inside the container, connecting over the container's
  own loopback; the exec's stdin and stdout carry the bytes. A Docker bridge (even ``internal``)
  would give the container a route to every service the provider host listens on: this way the
  requestor gets into its own activity and the container gets out to nothing.
* **Package names.** The archive's own names (``RepoTags``, ``repositories``, OCI ref annotations)
  are stripped while it streams into ``docker load``: a package could otherwise retag the
  operator's images, or claim ``golem-pkg:<someone else's hash>`` and be run in its place.
* **Memory kills.** On cgroup v1 a process the OOM killer stops inside an exec does not set the
  container's ``OOMKilled``; each ``run`` compares the container's memory cgroup ``oom_kill`` counter
  before and after (``memory.oom_control`` on v1, ``memory.events`` on v2). Where that file cannot
  be read, exit code 137 is reported as a SIGKILL that the memory limit may explain.
* **Cancellation.** Cancelling the task awaiting ``run`` kills the exec'd process group (runc makes
  the exec'd process a session leader) from the host, falling back to the helper's ``kill`` inside
  the container when the host may not signal it.
* **Background processes.** A ``run`` returns when its main process exits even if a background
  child still holds stdout: the exec is polled and, once it has exited, the stream gets a short grace
  for the last bytes and is closed. The child keeps running until ``terminate``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import struct
import tarfile
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path, PurePosixPath
from typing import Any

import docker
import docker.errors
from docker.types import Mount
from docker.utils.socket import frames_iter

from exeunits.errors import (
    ActivityStateError,
    PackageError,
    RuntimeCommandError,
    RuntimeUnavailableError,
)
from exeunits.runtime.base import (
    ActivitySpec,
    ByteChannel,
    DeployOptions,
    MiB,
    NetworkAttachment,
    OutputCallback,
    ResourceLimits,
    RunResult,
    StreamName,
)

log = logging.getLogger(__name__)

GiB = 1024 * MiB
PACKAGE_REPOSITORY = "golem-pkg"
ACTIVITY_LABEL = "golem.activity-id"
OWNER_LABEL = "golem.exeunit-owner"
PACKAGE_LABEL = "golem.package-hash"
VOLUMES_LABEL = "golem.volumes-root"
VOLUMES_DIRNAME = "vm-volumes"
"""The folder under ``ActivitySpec.workdir`` holding one sub-folder per container volume."""

HELPER_SOURCE = Path("/usr/bin/busybox")
HELPER_TARGET = "/.golem/busybox"
KEEPALIVE = [HELPER_TARGET, "sleep", "2147483647"]
RESERVED_PATHS = tuple(PurePosixPath(p) for p in ("/proc", "/sys", "/dev", "/.golem"))

STOP_TIMEOUT_S = 2
EXIT_GRACE_S = 0.25
"""After an exec's main process has exited, how long its stream may take to deliver the last bytes."""
POLL_FIRST_S = 0.05
POLL_MAX_S = 1.0
KILL_WAIT_S = 5.0
VPN_CAPABILITY = "vpn"
TCP_TARGET = "127.0.0.1"
"""Where a VPN tunnel's ``nc`` connects inside the container: its own loopback."""

ClientFactory = Callable[[], Any]
_SHA3_224_HEX = re.compile(r"[0-9a-f]{56}")


class _Phase(Enum):
    NEW = "new"
    """Created by the factory; nothing exists in Docker yet."""
    DEPLOYED = "deployed"
    """The container and its folders exist; it is not running."""
    STARTED = "started"
    """The container runs its keep-alive; ``run`` may be called."""
    TERMINATED = "terminated"
    """Everything is removed; only ``cpu_seconds`` and ``terminate`` still answer."""


# --------------------------------------------------------------------------------------------
# Image cache bookkeeping (pure)


@dataclass
class _CachedImage:
    image_id: str
    size: int
    last_used: int


class ImageCache:
    """Which package images are loaded, which live activities hold them, and what to evict.

    Pure bookkeeping; the factory performs the removals it suggests. Sizes are Docker's image
    sizes; two packages sharing layers are over-counted, which errs on the side of evicting.
    """

    def __init__(self, capacity_bytes: int) -> None:
        self.capacity_bytes = capacity_bytes
        self._entries: dict[str, _CachedImage] = {}
        self._holds: Counter[str] = Counter()
        self._tick = 0

    def __contains__(self, package_hash: object) -> bool:
        return package_hash in self._entries

    def image_id(self, package_hash: str) -> str | None:
        entry = self._entries.get(package_hash)
        return entry.image_id if entry else None

    def add(self, package_hash: str, image_id: str, size: int) -> None:
        """Record a loaded (or, at start-up, found) image; it counts as the most recently used."""
        self._entries[package_hash] = _CachedImage(image_id, size, self._next_tick())

    def forget(self, package_hash: str) -> None:
        self._entries.pop(package_hash, None)

    def hold(self, package_hash: str) -> None:
        """A live activity uses this image: never evict it until released."""
        self._holds[package_hash] += 1
        if entry := self._entries.get(package_hash):
            entry.last_used = self._next_tick()

    def release(self, package_hash: str) -> None:
        self._holds[package_hash] -= 1
        if self._holds[package_hash] <= 0:
            del self._holds[package_hash]

    def total_bytes(self) -> int:
        return sum({e.image_id: e.size for e in self._entries.values()}.values())

    def victims(self) -> list[str]:
        """Least recently used, unheld packages to drop until the cache fits its capacity."""
        held_ids = {self._entries[h].image_id for h in self._holds if h in self._entries}
        sizes = {e.image_id: e.size for e in self._entries.values()}
        remaining = Counter(e.image_id for e in self._entries.values())
        total = sum(sizes.values())
        chosen: list[str] = []
        for package_hash, entry in sorted(self._entries.items(), key=lambda kv: kv[1].last_used):
            if total <= self.capacity_bytes:
                break
            if entry.image_id in held_ids:
                continue
            chosen.append(package_hash)
            remaining[entry.image_id] -= 1
            if remaining[entry.image_id] == 0:
                total -= sizes[entry.image_id]
        return chosen

    def _next_tick(self) -> int:
        self._tick += 1
        return self._tick


# --------------------------------------------------------------------------------------------
# The factory


class DockerRuntimeFactory:
    """Makes ``vm`` exe units: hardened containers from ``docker save`` packages.

    ``owner`` names this provider instance; its containers carry it in a label, so that ``start``
    reaps only what a crashed earlier run of the same provider left behind. ``client_factory`` is
    the seam to the Docker engine (``docker.from_env`` by default).
    """

    name = "vm"

    def __init__(
        self,
        owner: str,
        *,
        client_factory: ClientFactory = docker.from_env,
        image_cache_bytes: int = 10 * GiB,
        helper_binary: Path = HELPER_SOURCE,
    ) -> None:
        if not owner:
            raise ValueError("owner must name this provider instance")
        self.owner = owner
        self.helper_binary = helper_binary
        self.loads = 0
        """How many package archives were loaded into Docker (the rest came from the cache)."""
        self._client_factory = client_factory
        self._client: Any = None
        self._cache = ImageCache(image_cache_bytes)
        self._hash_locks: dict[str, asyncio.Lock] = {}
        self._live: set[DockerRuntime] = set()

    async def __aenter__(self) -> DockerRuntimeFactory:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Connect to the engine, remove this owner's leftover containers, index cached packages."""
        if self._client is not None:
            return
        if not await asyncio.to_thread(_is_static_executable, self.helper_binary):
            raise RuntimeUnavailableError(
                f"the vm runtime needs a statically linked busybox at {self.helper_binary} "
                "(Debian: apt-get install busybox-static)"
            )
        client = await asyncio.to_thread(_connect, self._client_factory)
        try:
            reaped = await asyncio.to_thread(_reap_containers, client, self.owner)
            found = await asyncio.to_thread(_cached_packages, client)
        except (docker.errors.DockerException, OSError) as exc:
            await asyncio.to_thread(client.close)
            raise RuntimeUnavailableError(f"cannot reach the Docker engine: {exc}") from exc
        for package_hash, image_id, size in found:
            self._cache.add(package_hash, image_id, size)
        self._client = client
        if reaped:
            log.info("removed %d container(s) left by an earlier run of %s", reaped, self.owner)

    async def create(self, spec: ActivitySpec) -> DockerRuntime:
        """Make the exe unit of one activity, loading its package unless it is cached."""
        client = self._require_client()
        package_hash = spec.package_hash.lower()
        if not _SHA3_224_HEX.fullmatch(package_hash):
            raise PackageError(f"package hash {spec.package_hash!r} is not a sha3-224 in hex")
        # Held from the start, so that an eviction running meanwhile cannot remove it under us.
        self._cache.hold(package_hash)
        try:
            image_id = await self._image_for(client, package_hash, spec.package_path)
        except BaseException:
            self._cache.release(package_hash)
            raise
        runtime = DockerRuntime(self, client, spec, image_id)
        self._live.add(runtime)
        await self._evict()
        return runtime

    async def _image_for(self, client: Any, package_hash: str, archive: Path) -> str:
        async with self._hash_locks.setdefault(package_hash, asyncio.Lock()):
            cached = self._cache.image_id(package_hash)
            if cached is not None and await asyncio.to_thread(_image_exists, client, cached):
                return cached
            if cached is not None:
                log.info("cached image of package %s disappeared; loading it again", package_hash)
            image_id, size = await asyncio.to_thread(_load_package, client, archive, package_hash)
            self.loads += 1
            self._cache.add(package_hash, image_id, size)
            return image_id

    async def close(self) -> None:
        """Terminate the activities still live and let go of the engine; idempotent."""
        for runtime in list(self._live):
            await runtime.terminate()
        if self._client is not None:
            client, self._client = self._client, None
            await asyncio.to_thread(client.close)

    async def _released(self, runtime: DockerRuntime) -> None:
        if runtime in self._live:
            self._live.discard(runtime)
            self._cache.release(runtime.package_hash)
            await self._evict()

    async def _evict(self) -> None:
        client = self._client
        if client is None:
            return
        for package_hash in self._cache.victims():
            if await asyncio.to_thread(_untag_package, client, package_hash):
                self._cache.forget(package_hash)

    def _require_client(self) -> Any:
        if self._client is None:
            raise RuntimeUnavailableError("the vm runtime is not started")
        return self._client


# --------------------------------------------------------------------------------------------
# One activity


class DockerRuntime:
    """One activity's container. Made by :meth:`DockerRuntimeFactory.create`."""

    def __init__(self, factory: DockerRuntimeFactory, client: Any, spec: ActivitySpec, image_id: str) -> None:
        self.spec = spec
        self.package_hash = spec.package_hash.lower()
        self._factory = factory
        self._client = client
        self._image_id = image_id
        self._phase = _Phase.NEW
        self._container_id: str | None = None
        self._volumes: dict[str, Path] = {}
        self._volumes_root = spec.workdir / VOLUMES_DIRNAME
        self._cgroup: _Cgroup | None = None
        self._cpu_seconds = 0.0
        self._removed = False
        self._networks: tuple[NetworkAttachment, ...] = ()
        self._channels: set[_ExecTcpChannel] = set()

    @property
    def container_id(self) -> str | None:
        return self._container_id

    async def deploy(self, options: DeployOptions) -> None:
        """Create the container with its volumes bound to fresh folders under ``spec.workdir``."""
        self._require(_Phase.NEW, "deploy")
        if options.networks and VPN_CAPABILITY not in self.spec.capabilities:
            raise RuntimeCommandError(
                "deploy asks to join a VPN, but the agreed offer does not include the vpn capability"
            )
        requested = [_container_path(v) for v in options.volumes]
        try:
            image_config = (await asyncio.to_thread(self._client.api.inspect_image, self._image_id))["Config"]
            declared = list((image_config or {}).get("Volumes") or {})
            paths = list(dict.fromkeys([*map(_container_path, declared), *requested]))
            self._volumes = await asyncio.to_thread(_make_volume_folders, self._volumes_root, paths)
            self._container_id = await asyncio.to_thread(self._create_container, options)
        except (docker.errors.DockerException, OSError) as exc:
            await asyncio.to_thread(_remove_folder, self._volumes_root)
            self._volumes = {}
            raise RuntimeCommandError(
                f"cannot create the container of {self.spec.activity_id}: {exc}"
            ) from exc
        self._networks = options.networks
        self._phase = _Phase.DEPLOYED
        log.debug("activity %s: container %s created", self.spec.activity_id, self._container_id[:12])

    async def start(self, args: list[str]) -> None:
        """Start the container's keep-alive; ``args`` are accepted and ignored, as by yagna's vm."""
        self._require(_Phase.DEPLOYED, "start")
        try:
            self._cgroup = await asyncio.to_thread(self._start_container)
        except docker.errors.DockerException as exc:
            raise RuntimeCommandError(
                f"cannot start the container of {self.spec.activity_id}: {exc}"
            ) from exc
        self._phase = _Phase.STARTED

    async def run(self, entry_point: str, args: list[str], on_output: OutputCallback) -> RunResult:
        """Exec ``[entry_point, *args]`` in the container; output streams through ``on_output``.

        ``on_output`` sees exactly what is captured: once a stream reaches
        ``limits.output_cap_bytes`` the rest is drained and dropped, and the result's
        ``*_truncated`` flag is set.
        """
        self._require(_Phase.STARTED, "run")
        limits = self.spec.limits
        loop = asyncio.get_running_loop()
        oom_before, exec_id = await asyncio.to_thread(self._create_exec, [entry_point, *args])
        execution = _Execution(
            self._client, exec_id, limits.output_cap_bytes, loop, on_output, self.spec.activity_id
        )
        execution.begin()
        try:
            await self._wait_for_exit(execution)
        except asyncio.CancelledError:
            await self._kill(execution)
            raise
        execution.raise_failure()
        info, oom_after, state = await asyncio.to_thread(self._finish_exec, exec_id)
        code = info.get("ExitCode")
        return_code = code if isinstance(code, int) else -1
        capture = execution.capture
        return RunResult(
            return_code=return_code,
            stdout=bytes(capture.data["stdout"]),
            stderr=bytes(capture.data["stderr"]),
            stdout_truncated=capture.truncated["stdout"],
            stderr_truncated=capture.truncated["stderr"],
            message=_ending_message(return_code, oom_before, oom_after, state, limits),
        )

    async def connect(self, port: int) -> ByteChannel:
        """A TCP connection to ``port`` inside the running container, for a VPN tunnel.

        Refused unless the activity joined a VPN at deploy. Raises :class:`RuntimeCommandError` when
        nothing listens on the port (checked first, so the requestor hears it before its tunnel
        opens) or the exec cannot be started. See the module docstring for why an exec.
        """
        self._require(_Phase.STARTED, "connect to")
        if not self._networks:
            raise RuntimeCommandError(f"activity {self.spec.activity_id} joined no VPN at deploy")
        if not 0 < port < 65536:
            raise RuntimeCommandError(f"{port} is not a TCP port")
        if port not in await asyncio.to_thread(self._listening_ports):
            raise RuntimeCommandError(f"nothing listens on TCP port {port} in the container")
        starting = asyncio.ensure_future(asyncio.to_thread(self._start_tcp_exec, port))
        try:
            exec_id, sock = await asyncio.shield(starting)
        except asyncio.CancelledError:
            # The caller gave up (a timeout); the exec may still start: its socket must not leak.
            starting.add_done_callback(_close_started_exec)
            raise
        raw = _raw_socket(sock)
        if not isinstance(raw, socket.socket):
            with contextlib.suppress(OSError):
                sock.close()
            raise RuntimeCommandError("VPN tunnels need the Docker engine on a local socket")
        try:
            reader, writer = await asyncio.open_connection(sock=raw)
        except OSError as exc:
            with contextlib.suppress(OSError):
                sock.close()
            raise RuntimeCommandError(f"cannot attach to the tunnel's process: {exc}") from exc
        channel = _ExecTcpChannel(self, exec_id, sock, reader, writer)
        self._channels.add(channel)
        return channel

    def volumes(self) -> dict[str, Path]:
        return dict(self._volumes)

    async def cpu_seconds(self) -> float:
        """CPU time the container's cgroup has used; the last figure once it is gone."""
        if self._phase is _Phase.STARTED and self._container_id is not None:
            used = await asyncio.to_thread(self._read_cpu_seconds)
            if used is not None:
                self._cpu_seconds = max(self._cpu_seconds, used)
        return self._cpu_seconds

    async def terminate(self) -> None:
        """Stop and remove the container and its folders; safe to call any number of times.

        If the engine refuses the removal, the error is raised and a later call tries again.
        """
        if self._removed:
            return
        if self._phase is _Phase.STARTED:
            await self.cpu_seconds()
        self._phase = _Phase.TERMINATED
        for channel in list(self._channels):
            await channel.close()
        try:
            if self._container_id is not None:
                await asyncio.to_thread(_remove_container, self._client, self._container_id)
            await asyncio.to_thread(_remove_folder, self._volumes_root)
            self._removed = True
        finally:
            await self._factory._released(self)
        log.debug("activity %s: terminated", self.spec.activity_id)

    # -- internals --------------------------------------------------------------------------

    def _require(self, phase: _Phase, command: str) -> None:
        if self._phase is not phase:
            raise ActivityStateError(
                f"cannot {command} activity {self.spec.activity_id}: it is {self._phase.value}"
            )

    def _create_container(self, options: DeployOptions) -> str:
        limits = self.spec.limits
        mounts = [Mount(HELPER_TARGET, str(self._factory.helper_binary), type="bind", read_only=True)]
        mounts += [Mount(path, str(folder), type="bind") for path, folder in self._volumes.items()]
        container = self._client.containers.create(
            self._image_id,
            entrypoint=KEEPALIVE,
            command=[],
            environment=dict(options.env),
            hostname=options.hostname,
            labels={
                ACTIVITY_LABEL: self.spec.activity_id,
                OWNER_LABEL: self._factory.owner,
                PACKAGE_LABEL: self.package_hash,
                VOLUMES_LABEL: str(self._volumes_root),
            },
            mounts=mounts,
            init=True,
            network_mode="none",
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            pids_limit=max(limits.pids, 1),
            mem_limit=limits.memory_bytes,
            memswap_limit=limits.memory_bytes,
            nano_cpus=max(int(limits.cpu_threads * 1e9), 1),
        )
        return str(container.id)

    def _start_container(self) -> _Cgroup | None:
        self._client.api.start(self._container_id)
        state = self._client.api.inspect_container(self._container_id)["State"]
        if not state.get("Running"):
            raise RuntimeCommandError(
                f"the container of {self.spec.activity_id} stopped at once: {state.get('Error') or state}"
            )
        return _Cgroup.of_process(int(state.get("Pid") or 0), str(self._container_id))

    def _create_exec(self, command: list[str]) -> tuple[int | None, str]:
        oom_before = self._cgroup.oom_kills() if self._cgroup else None
        try:
            exec_id = self._client.api.exec_create(self._container_id, command, stdout=True, stderr=True)[
                "Id"
            ]
        except docker.errors.APIError as exc:
            raise RuntimeCommandError(f"cannot run {command[0]!r}: {self._why_not_running(exc)}") from exc
        except (docker.errors.DockerException, OSError) as exc:
            raise RuntimeCommandError(f"cannot run {command[0]!r}: {exc}") from exc
        return oom_before, str(exec_id)

    def _read_cpu_seconds(self) -> float | None:
        used = self._cgroup.cpu_seconds() if self._cgroup else None
        if used is not None:
            return used
        try:
            stats = self._client.api.stats(self._container_id, stream=False, one_shot=True)
            return float(stats["cpu_stats"]["cpu_usage"]["total_usage"]) / 1e9
        except (docker.errors.DockerException, OSError, KeyError, TypeError, ValueError) as exc:
            log.debug("activity %s: no CPU statistics: %s", self.spec.activity_id, exc)
            return None

    def _why_not_running(self, exc: Exception) -> str:
        try:
            state = self._client.api.inspect_container(self._container_id)["State"]
        except (docker.errors.DockerException, OSError):
            return str(exc)
        if state.get("Running"):
            return str(exc)
        if state.get("OOMKilled"):
            return f"the container was stopped: {_memory_limit(self.spec.limits)} reached"
        return f"the container is not running (exit code {state.get('ExitCode')})"

    def _listening_ports(self) -> set[int]:
        try:
            exec_id = self._client.api.exec_create(
                self._container_id, [HELPER_TARGET, "cat", *PROC_NET_TCP], stdout=True, stderr=True
            )["Id"]
            stdout, _ = self._client.api.exec_start(exec_id, demux=True)
        except docker.errors.APIError as exc:
            raise RuntimeCommandError(
                f"cannot look into the container: {self._why_not_running(exc)}"
            ) from exc
        except (docker.errors.DockerException, OSError) as exc:
            raise RuntimeCommandError(f"cannot look into the container: {exc}") from exc
        return loopback_listeners((stdout or b"").decode("ascii", errors="replace"))

    def _start_tcp_exec(self, port: int) -> tuple[str, Any]:
        command = [HELPER_TARGET, "nc", TCP_TARGET, str(port)]
        try:
            exec_id = str(
                self._client.api.exec_create(
                    self._container_id, command, stdin=True, stdout=True, stderr=True
                )["Id"]
            )
            return exec_id, self._client.api.exec_start(exec_id, socket=True)
        except (docker.errors.DockerException, OSError) as exc:
            raise RuntimeCommandError(f"cannot open a connection to port {port}: {exc}") from exc

    def _stop_exec(self, exec_id: str) -> None:
        """Kill an exec'd process that is still running (a tunnel's ``nc`` whose peer went away)."""
        try:
            info = self._client.api.exec_inspect(exec_id)
        except (docker.errors.DockerException, OSError):
            return  # the container (and so the process) is gone
        pid = int(info.get("Pid") or 0)
        if info.get("Running") and pid:
            self._kill_process_group(pid)

    def _finish_exec(self, exec_id: str) -> tuple[dict[str, Any], int | None, dict[str, Any] | None]:
        try:
            info: dict[str, Any] = self._client.api.exec_inspect(exec_id)
        except (docker.errors.DockerException, OSError) as exc:
            raise RuntimeCommandError(f"cannot read how the command ended: {exc}") from exc
        oom_after = self._cgroup.oom_kills() if self._cgroup else None
        state: dict[str, Any] | None = None
        if info.get("ExitCode") == 137 or oom_after is None:
            with contextlib.suppress(docker.errors.DockerException, OSError):
                state = self._client.api.inspect_container(self._container_id)["State"]
        return info, oom_after, state

    async def _wait_for_exit(self, execution: _Execution) -> None:
        """Until the stream ends, or the main process has exited and the grace has passed."""
        delay = POLL_FIRST_S
        while not await execution.wait(delay):
            delay = min(delay * 2, POLL_MAX_S)
            try:
                info = await asyncio.to_thread(self._client.api.exec_inspect, execution.exec_id)
            except (docker.errors.DockerException, OSError):
                continue
            if not info.get("Running") and info.get("ExitCode") is not None:
                # Exited, but a background child may still hold stdout: do not wait for it.
                if not await execution.wait(EXIT_GRACE_S):
                    execution.close()
                    await execution.wait(None)
                return

    async def _kill(self, execution: _Execution) -> None:
        """Stop the exec'd process (and its process group) because the run was cancelled."""
        if execution.abandon():
            deadline = asyncio.get_running_loop().time() + KILL_WAIT_S
            while asyncio.get_running_loop().time() < deadline:
                try:
                    info = await asyncio.to_thread(self._client.api.exec_inspect, execution.exec_id)
                except (docker.errors.DockerException, OSError) as exc:
                    log.warning(
                        "activity %s: cannot inspect a cancelled exec: %s", self.spec.activity_id, exc
                    )
                    break
                pid = int(info.get("Pid") or 0)
                if info.get("ExitCode") is not None:
                    break
                if info.get("Running") and pid:
                    await asyncio.to_thread(self._kill_process_group, pid)
                    break
                await asyncio.sleep(POLL_FIRST_S)
        if not await execution.wait(EXIT_GRACE_S):
            execution.close()
            await execution.wait(EXIT_GRACE_S)
        log.info("activity %s: cancelled run stopped", self.spec.activity_id)

    def _kill_process_group(self, host_pid: int) -> None:
        proc = Path(f"/proc/{host_pid}")
        try:
            visible = str(self._container_id) in (proc / "cgroup").read_text()
        except OSError:
            visible = False
        if visible:
            try:
                if os.getpgid(host_pid) == host_pid:
                    os.killpg(host_pid, signal.SIGKILL)
                else:
                    os.kill(host_pid, signal.SIGKILL)
                return
            except ProcessLookupError:
                return
            except PermissionError:
                pass
        namespace_pid = _namespace_pid(proc)
        if namespace_pid is None:
            log.warning(
                "activity %s: cannot stop cancelled process %d: it is not visible from this host",
                self.spec.activity_id,
                host_pid,
            )
            return
        try:
            self._client.containers.get(self._container_id).exec_run(
                [HELPER_TARGET, "kill", "-KILL", f"-{namespace_pid}"]
            )
        except (docker.errors.DockerException, OSError) as exc:
            log.warning("activity %s: cannot stop cancelled process: %s", self.spec.activity_id, exc)


# --------------------------------------------------------------------------------------------
# One exec's output stream, read on its own thread


class _Capture:
    """Captured output of one run, at most ``cap`` bytes per stream."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.data: dict[StreamName, bytearray] = {"stdout": bytearray(), "stderr": bytearray()}
        self.truncated: dict[StreamName, bool] = {"stdout": False, "stderr": False}

    def add(self, stream: StreamName, chunk: bytes) -> bytes:
        """Keep what fits; return the part kept (empty once the stream is full)."""
        buffer = self.data[stream]
        room = self.cap - len(buffer)
        if len(chunk) > room:
            self.truncated[stream] = True
            chunk = chunk[: max(room, 0)]
        buffer += chunk
        return chunk


class _Execution:
    """Reads one exec's multiplexed stream on a dedicated thread and hands chunks to the loop.

    A thread of its own rather than the default executor: a run may last hours, and a handful of
    them would otherwise starve every other ``to_thread`` call in the process. Chunks and the end
    are posted with ``call_soon_threadsafe``, so the loop sees them in order and every chunk before
    the end. The exec's socket is taken raw (``exec_start(socket=True)``) so that this side owns it:
    it can be shut down from the loop to end the read, and is always closed.
    """

    def __init__(
        self,
        client: Any,
        exec_id: str,
        cap: int,
        loop: asyncio.AbstractEventLoop,
        on_output: OutputCallback,
        activity_id: str,
    ) -> None:
        self.exec_id = exec_id
        self.capture = _Capture(cap)
        self._client = client
        self._loop = loop
        self._on_output = on_output
        self._activity_id = activity_id
        self._done: asyncio.Future[None] = loop.create_future()
        self._lock = threading.Lock()
        self._socket: Any = None
        self._started = False
        self._closed = False
        self._failure: BaseException | None = None

    def begin(self) -> None:
        threading.Thread(target=self._read, name=f"exec-{self.exec_id[:12]}", daemon=True).start()

    async def wait(self, timeout: float | None) -> bool:
        """True once the stream has ended (within ``timeout`` seconds)."""
        done, _ = await asyncio.wait({self._done}, timeout=timeout)
        return bool(done)

    def close(self) -> None:
        """End the stream from the loop's side; the reader thread then finishes."""
        with self._lock:
            self._closed = True
            sock = self._socket
        if sock is not None:
            _shut_down(sock)

    def abandon(self) -> bool:
        """Make sure the exec is never started from now on; True if it already was."""
        with self._lock:
            self._closed = True
            return self._started

    def raise_failure(self) -> None:
        if self._failure is not None:
            raise RuntimeCommandError(f"lost the output of the command: {self._failure}") from self._failure

    def _read(self) -> None:
        try:
            with self._lock:
                if self._closed:
                    return
                self._started = True
            sock = self._client.api.exec_start(self.exec_id, socket=True)
            with self._lock:
                self._socket = sock
                closed = self._closed
            try:
                if not closed:
                    _raw_socket(sock).settimeout(None)
                    for stream_id, chunk in frames_iter(sock, tty=False):
                        if stream_id == _STDOUT:
                            self._push("stdout", chunk)
                        elif stream_id == _STDERR:
                            self._push("stderr", chunk)
            finally:
                _shut_down(sock)
                with contextlib.suppress(OSError):
                    _raw_socket(sock).close()
                with contextlib.suppress(OSError):
                    sock.close()
        except Exception as exc:
            if not self._closed:
                self._failure = exc
        finally:
            self._loop.call_soon_threadsafe(self._finish)

    def _push(self, stream: StreamName, chunk: bytes) -> None:
        kept = self.capture.add(stream, chunk)
        if kept:
            self._loop.call_soon_threadsafe(self._deliver, stream, kept)

    def _deliver(self, stream: StreamName, chunk: bytes) -> None:
        try:
            self._on_output(stream, chunk)
        except Exception:
            log.exception("activity %s: output callback failed", self._activity_id)

    def _finish(self) -> None:
        if not self._done.done():
            self._done.set_result(None)


_STDOUT = 1
_STDERR = 2
_FRAME_HEADER = struct.Struct(">BxxxL")
_MAX_ERROR_TEXT = 500


# --------------------------------------------------------------------------------------------
# VPN tunnels: a TCP connection inside the container, through an exec'd nc


class _ExecTcpChannel:
    """One tunnel's connection: the stdin and stdout of ``nc`` exec'd in the container.

    The exec's socket is driven by asyncio streams: reads follow Docker's multiplexed framing
    (stdout carries the connection's bytes, stderr only ``nc``'s complaints), writes wait for the
    socket to drain, and ``write_eof`` shuts the socket's sending side, which Docker passes on as
    end of file on ``nc``'s stdin (``nc`` then half-closes the TCP connection).
    """

    def __init__(
        self,
        runtime: DockerRuntime,
        exec_id: str,
        sock: Any,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self._runtime = runtime
        self._exec_id = exec_id
        self._sock = sock
        self._reader = reader
        self._writer = writer
        self._errors = bytearray()
        self._closed = False

    async def read(self) -> bytes:
        while True:
            try:
                header = await self._reader.readexactly(_FRAME_HEADER.size)
                stream, size = _FRAME_HEADER.unpack(header)
                body = await self._reader.readexactly(size)
            except asyncio.IncompleteReadError:
                return self._ended()
            except OSError:
                return self._ended()
            if stream == _STDOUT and body:
                return body
            if stream == _STDERR:
                self._errors += body[: max(0, _MAX_ERROR_TEXT - len(self._errors))]

    def _ended(self) -> bytes:
        if self._errors:
            text = self._errors.decode("utf-8", errors="replace").strip()
            raise RuntimeCommandError(f"the connection in the container failed: {text}")
        return b""

    async def write(self, data: bytes) -> None:
        self._writer.write(data)
        await self._writer.drain()

    async def write_eof(self) -> None:
        if not self._writer.is_closing() and self._writer.can_write_eof():
            self._writer.write_eof()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._runtime._channels.discard(self)
        self._writer.close()
        with contextlib.suppress(OSError, ConnectionError):
            await self._writer.wait_closed()
        with contextlib.suppress(OSError):
            self._sock.close()
        await asyncio.to_thread(self._runtime._stop_exec, self._exec_id)


def _close_started_exec(started: asyncio.Future[tuple[str, Any]]) -> None:
    """Close the socket of a tunnel exec nobody waits for any more; ``nc`` then ends on its own
    (or with the container)."""
    if started.cancelled() or started.exception() is not None:
        return
    _, sock = started.result()
    _shut_down(sock)
    with contextlib.suppress(OSError):
        sock.close()


PROC_NET_TCP = ("/proc/net/tcp", "/proc/net/tcp6")
_LISTEN = "0A"


def loopback_listeners(proc_net_tcp: str) -> set[int]:
    """The TCP ports a connection to 127.0.0.1 can reach, from ``/proc/net/tcp`` and ``tcp6`` text.

    A listener counts when bound to 0.0.0.0, to an address in 127.0.0.0/8, to ``::`` (a dual-stack
    socket also takes IPv4) or to an IPv4-mapped form of those. The kernel writes addresses as hex
    of the in-memory bytes, 32-bit word by word in host order (little-endian here).
    """
    ports: set[int] = set()
    for line in proc_net_tcp.splitlines():
        fields = line.split()
        if len(fields) < 4 or fields[3] != _LISTEN or ":" not in fields[1]:
            continue
        address_hex, _, port_hex = fields[1].partition(":")
        try:
            raw = bytes.fromhex(address_hex)
            port = int(port_hex, 16)
        except ValueError:
            continue
        if len(raw) not in (4, 16):
            continue
        # Each 32-bit word is in host byte order.
        words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
        if len(words) == 4:
            v4: tuple[int, ...] | None = tuple(words)
        elif words == bytes(16):
            v4 = (0, 0, 0, 0)
        elif words[:12] == bytes(10) + b"\xff\xff":
            v4 = tuple(words[12:])
        else:
            v4 = None
        if v4 is not None and (v4 == (0, 0, 0, 0) or v4[0] == 127):
            ports.add(port)
    return ports


def _raw_socket(sock: Any) -> Any:
    """The OS socket behind what ``exec_start(socket=True)`` returns (a ``SocketIO`` on Unix)."""
    return getattr(sock, "_sock", None) or sock


def _shut_down(sock: Any) -> None:
    # shutdown() rather than close(): it wakes a reader blocked in poll() on another thread.
    with contextlib.suppress(OSError, AttributeError):
        _raw_socket(sock).shutdown(socket.SHUT_RDWR)


# --------------------------------------------------------------------------------------------
# Memory cgroup of a container (host side)


@dataclass(frozen=True)
class _Cgroup:
    """The container's cgroup files this host can read: OOM kills and CPU time.

    Reading them is instant, where the engine's one-shot stats take up to a second. Either may be
    missing (a remote engine, another cgroup namespace); callers then fall back to the API.
    """

    oom_file: Path | None
    """``memory.oom_control`` (v1) or ``memory.events`` (v2); both have an ``oom_kill`` line."""
    cpu_file: Path | None
    """``cpuacct.usage`` (v1, nanoseconds) or ``cpu.stat`` (v2, ``usage_usec``)."""

    @classmethod
    def of_process(cls, pid: int, container_id: str) -> _Cgroup:
        try:
            lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines() if pid > 0 else []
        except OSError:
            lines = []
        oom: list[Path] = []
        cpu: list[Path] = []
        for line in lines:
            _, controllers, path = line.split(":", 2)
            if container_id not in path:
                continue  # not a path this host's /sys/fs/cgroup can resolve to the container
            relative = path.lstrip("/")
            names = controllers.split(",")
            if "memory" in names:
                oom.append(Path(f"/sys/fs/cgroup/{controllers}", relative, "memory.oom_control"))
            if "cpuacct" in names:
                cpu.append(Path(f"/sys/fs/cgroup/{controllers}", relative, "cpuacct.usage"))
            if controllers == "":
                oom.append(Path("/sys/fs/cgroup", relative, "memory.events"))
                cpu.append(Path("/sys/fs/cgroup", relative, "cpu.stat"))
        probe = cls(next((p for p in oom if p.is_file()), None), next((p for p in cpu if p.is_file()), None))
        return cls(
            probe.oom_file if probe.oom_kills() is not None else None,
            probe.cpu_file if probe.cpu_seconds() is not None else None,
        )

    def oom_kills(self) -> int | None:
        return _read_counter(self.oom_file, "oom_kill")

    def cpu_seconds(self) -> float | None:
        if self.cpu_file is None:
            return None
        if self.cpu_file.name == "cpu.stat":
            usec = _read_counter(self.cpu_file, "usage_usec")
            return None if usec is None else usec / 1e6
        try:
            return int(self.cpu_file.read_text()) / 1e9
        except (OSError, ValueError):
            return None


def _read_counter(path: Path | None, key: str) -> int | None:
    if path is None:
        return None
    try:
        text = path.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return int(value)
    return None


def _ending_message(
    return_code: int,
    oom_before: int | None,
    oom_after: int | None,
    state: dict[str, Any] | None,
    limits: ResourceLimits,
) -> str | None:
    limit = _memory_limit(limits)
    if state is not None and not state.get("Running", True):
        if state.get("OOMKilled"):
            return f"killed: {limit} reached; the container was stopped"
        return f"the container stopped (exit code {state.get('ExitCode')})"
    if oom_before is not None and oom_after is not None and oom_after > oom_before:
        if return_code == 137:
            return f"killed: {limit} reached"
        return f"a process was killed: {limit} reached"
    if return_code == 137 and (oom_before is None or oom_after is None):
        return f"killed by SIGKILL (exit code 137); the {limit} may have been reached"
    return None


def _memory_limit(limits: ResourceLimits) -> str:
    return f"memory limit of {limits.memory_bytes / MiB:g} MiB"


# --------------------------------------------------------------------------------------------
# Blocking helpers (run on worker threads)


def _connect(client_factory: ClientFactory) -> Any:
    try:
        client = client_factory()
    except (docker.errors.DockerException, OSError) as exc:
        raise RuntimeUnavailableError(f"cannot reach the Docker engine: {exc}") from exc
    try:
        client.ping()
    except (docker.errors.DockerException, OSError) as exc:
        client.close()
        raise RuntimeUnavailableError(f"cannot reach the Docker engine: {exc}") from exc
    return client


def _reap_containers(client: Any, owner: str) -> int:
    leftovers = client.containers.list(all=True, filters={"label": f"{OWNER_LABEL}={owner}"})
    for container in leftovers:
        volumes_root = container.labels.get(VOLUMES_LABEL, "")
        try:
            _remove_container(client, container.id)
        except RuntimeCommandError as exc:
            log.warning("cannot reap %s: %s", container.id[:12], exc)
            continue
        # Only ever a folder of the shape this module makes: a label is not proof of anything.
        if volumes_root and Path(volumes_root).name == VOLUMES_DIRNAME and Path(volumes_root).is_absolute():
            _remove_folder(Path(volumes_root))
    return len(leftovers)


def _cached_packages(client: Any) -> list[tuple[str, str, int]]:
    images = client.images.list(name=PACKAGE_REPOSITORY)
    found: list[tuple[str, str, int, str]] = []
    for image in images:
        for tag in image.tags:
            repository, _, package_hash = tag.rpartition(":")
            if repository == PACKAGE_REPOSITORY:
                found.append(
                    (
                        package_hash,
                        image.id,
                        int(image.attrs.get("Size") or 0),
                        image.attrs.get("Created", ""),
                    )
                )
    found.sort(key=lambda f: f[3])  # oldest first: the first to go when over capacity
    return [(h, i, s) for h, i, s, _ in found]


def _image_exists(client: Any, image_id: str) -> bool:
    try:
        client.api.inspect_image(image_id)
    except docker.errors.ImageNotFound:
        return False
    except (docker.errors.DockerException, OSError) as exc:
        raise RuntimeUnavailableError(f"cannot reach the Docker engine: {exc}") from exc
    return True


def _load_package(client: Any, archive: Path, package_hash: str) -> tuple[str, int]:
    _check_archive(archive)
    try:
        images = client.images.load(_unnamed_archive(archive))
    except PackageError:
        raise
    except (docker.errors.ImageLoadError, docker.errors.APIError, tarfile.TarError, ValueError) as exc:
        raise PackageError(f"package {package_hash} is not a loadable docker archive: {exc}") from exc
    except (docker.errors.DockerException, OSError) as exc:
        raise RuntimeUnavailableError(f"cannot load package {package_hash} into Docker: {exc}") from exc
    if len(images) != 1:
        raise PackageError(
            f"package {package_hash} loaded {len(images)} images; a package must hold exactly one"
        )
    image = images[0]
    try:
        image.tag(PACKAGE_REPOSITORY, package_hash)
    except docker.errors.DockerException as exc:
        raise RuntimeUnavailableError(f"cannot tag package {package_hash}: {exc}") from exc
    log.info("loaded package %s as image %s", package_hash, image.short_id)
    return str(image.id), int(image.attrs.get("Size") or 0)


def _check_archive(archive: Path) -> None:
    """Refuse, before Docker sees it, an archive that is not a single-image ``docker save``."""
    try:
        with tarfile.open(archive, "r:") as tar:
            member = next((m for m in tar if _member_name(m) == "manifest.json"), None)
            if member is None or not member.isreg():
                raise PackageError(f"{archive.name} is not a docker save archive: no manifest.json")
            source = tar.extractfile(member)
            manifest = json.loads(source.read()) if source else None
    except (tarfile.TarError, OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PackageError(f"{archive.name} is not a docker save archive: {exc}") from exc
    if not (isinstance(manifest, list) and len(manifest) == 1 and isinstance(manifest[0], dict)):
        raise PackageError(
            f"{archive.name} must hold exactly one image (its manifest.json lists something else)"
        )
    if not isinstance(manifest[0].get("Config"), str) or not isinstance(manifest[0].get("Layers"), list):
        raise PackageError(f"{archive.name}: manifest.json names no image config or layers")


def _unnamed_archive(archive: Path) -> Iterator[bytes]:
    """The archive as a tar stream with every image name it carries removed."""
    with tarfile.open(archive, "r|") as tar:
        for member in tar:
            name = _member_name(member)
            if name == "repositories":
                continue
            if name in ("manifest.json", "index.json") and member.isreg():
                source = tar.extractfile(member)
                document = json.loads(source.read()) if source else None
                yield from _tar_entry(name, member.mtime, json.dumps(_strip_names(name, document)).encode())
                continue
            yield member.tobuf(tarfile.PAX_FORMAT)
            if member.isreg():
                source = tar.extractfile(member)
                if source is None:
                    raise PackageError(f"{archive.name}: cannot read {member.name}")
                while chunk := source.read(MiB):
                    yield chunk
                yield _padding(member.size)
    yield b"\0" * (2 * tarfile.BLOCKSIZE)


def _strip_names(name: str, document: Any) -> Any:
    if name == "manifest.json" and isinstance(document, list):
        for entry in document:
            if isinstance(entry, dict):
                entry["RepoTags"] = None
    elif name == "index.json" and isinstance(document, dict):
        for descriptor in document.get("manifests") or []:
            annotations = descriptor.get("annotations") if isinstance(descriptor, dict) else None
            if isinstance(annotations, dict):
                annotations.pop("io.containerd.image.name", None)
                annotations.pop("org.opencontainers.image.ref.name", None)
    return document


def _tar_entry(name: str, mtime: float, content: bytes) -> Iterator[bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(content)
    info.mtime = int(mtime)
    info.mode = 0o644
    yield info.tobuf(tarfile.PAX_FORMAT)
    yield content
    yield _padding(len(content))


def _padding(size: int) -> bytes:
    return b"\0" * (-size % tarfile.BLOCKSIZE)


def _member_name(member: tarfile.TarInfo) -> str:
    return str(PurePosixPath(member.name))


def _untag_package(client: Any, package_hash: str) -> bool:
    """Drop one package's tag (Docker deletes the image when nothing else names or uses it)."""
    try:
        client.images.remove(f"{PACKAGE_REPOSITORY}:{package_hash}")
    except docker.errors.ImageNotFound:
        return True
    except (docker.errors.DockerException, OSError) as exc:
        log.info("cannot evict package %s yet: %s", package_hash, exc)
        return False
    log.info("evicted package %s from the image cache", package_hash)
    return True


def _remove_container(client: Any, container_id: str) -> None:
    try:
        client.api.stop(container_id, timeout=STOP_TIMEOUT_S)
    except docker.errors.NotFound:
        return
    except (docker.errors.DockerException, OSError) as exc:
        log.debug("stopping %s failed, removing it anyway: %s", container_id[:12], exc)
    try:
        client.api.remove_container(container_id, v=True, force=True)
    except docker.errors.NotFound:
        return
    except (docker.errors.DockerException, OSError) as exc:
        raise RuntimeCommandError(f"cannot remove container {container_id[:12]}: {exc}") from exc


def _container_path(path: str) -> str:
    """A volume path, normalised; refused if relative, escaping, or over what the runtime owns."""
    candidate = PurePosixPath(path)
    if not candidate.is_absolute() or ".." in candidate.parts or candidate == PurePosixPath("/"):
        raise RuntimeCommandError(f"volume {path!r} must be an absolute path below /")
    for reserved in RESERVED_PATHS:
        if candidate == reserved or reserved in candidate.parents:
            raise RuntimeCommandError(f"volume {path!r} is not allowed (under {reserved})")
    return str(candidate)


def _make_volume_folders(root: Path, paths: list[str]) -> dict[str, Path]:
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True, mode=0o700)
    folders: dict[str, Path] = {}
    for index, path in enumerate(paths):
        slug = "".join(c if c.isalnum() or c in "._-" else "-" for c in path.strip("/"))
        folder = root / f"{index:02d}-{slug}"
        folder.mkdir()
        # The container's user is not this process's; without CAP_DAC_OVERRIDE it can write only
        # where the mode lets it. The 0700 root keeps other host users out.
        folder.chmod(0o777)
        folders[path] = folder
    return folders


def _remove_folder(folder: Path) -> None:
    try:
        shutil.rmtree(folder)
    except FileNotFoundError:
        pass
    except OSError as exc:
        # E.g. a sub-folder the container's user made without write permission for this one.
        log.warning("cannot remove all of %s: %s", folder, exc)


def _namespace_pid(proc: Path) -> int | None:
    try:
        for line in (proc / "status").read_text().splitlines():
            if line.startswith("NSpid:"):
                return int(line.split()[-1])
    except (OSError, ValueError):
        return None
    return None


def _is_static_executable(path: Path) -> bool:
    """True for an ELF executable with no program interpreter (so it runs in any image)."""
    try:
        with path.open("rb") as f:
            header = f.read(64)
            if len(header) < 64 or header[:4] != b"\x7fELF" or header[4] != 2 or header[5] != 1:
                return False
            (phoff,) = struct.unpack_from("<Q", header, 0x20)
            phentsize, phnum = struct.unpack_from("<HH", header, 0x36)
            f.seek(phoff)
            table = f.read(phentsize * phnum)
    except OSError:
        return False
    pt_interp = 3
    return all(
        struct.unpack_from("<I", table, i * phentsize)[0] != pt_interp for i in range(phnum)
    ) and os.access(path, os.X_OK)
