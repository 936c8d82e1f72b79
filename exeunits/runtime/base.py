"""What every runtime provides: the seam between the batch executor and Docker or wasmtime.

A :class:`RuntimeFactory` makes one :class:`ExeUnitRuntime` per activity from a verified local
package. The executor calls ``deploy``, ``start``, ``run`` (any number of times) and ``terminate``
in that order; the runtime never sees a command out of order. ``run`` streams output through a
callback as it is produced and returns the exit code with the captured (capped) output. Cancelling
the task awaiting ``run`` must stop the process it started.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

StreamName = Literal["stdout", "stderr"]
OutputCallback = Callable[[StreamName, bytes], None]

MiB = 1024 * 1024


@dataclass(frozen=True)
class ResourceLimits:
    """Bounds on one activity, taken from its agreement (``golem.inf.*``) and the provider's rules."""

    cpu_threads: float = 1.0
    memory_bytes: int = 512 * MiB
    pids: int = 256
    output_cap_bytes: int = 1 * MiB
    """Per stream and per ``run``: output past this is dropped (and the result says so)."""
    cpu_seconds: float | None = None
    """WASM only: CPU time one ``run`` may use before it is stopped (fuel/epoch bound)."""


@dataclass(frozen=True)
class ActivitySpec:
    activity_id: str
    package_path: Path
    """The package file, already verified against ``package_hash``."""
    package_hash: str
    """sha3-224 of the package, lower-case hex."""
    workdir: Path
    """A host folder owned by this activity; the runtime puts its volumes under it."""
    limits: ResourceLimits = field(default_factory=ResourceLimits)
    capabilities: frozenset[str] = frozenset()
    """``golem.runtime.capabilities`` of the agreed offer (e.g. ``vpn``): what the activity may use."""


@dataclass(frozen=True)
class NetworkAttachment:
    """A VPN the activity joins at ``deploy``: the network and the activity's address in it."""

    network_id: str
    network: IPv4Network
    address: IPv4Address


@dataclass(frozen=True)
class DeployOptions:
    """What a ``deploy`` command may ask for (``hosts`` is ignored)."""

    env: dict[str, str] = field(default_factory=dict)
    volumes: tuple[str, ...] = ()
    hostname: str | None = None
    networks: tuple[NetworkAttachment, ...] = ()
    """VPNs to join; a runtime without networking (or an offer without ``vpn``) refuses them."""


@dataclass
class RunResult:
    return_code: int
    stdout: bytes = b""
    stderr: bytes = b""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    message: str | None = None
    """Why the command ended other than by exiting, e.g. "killed: memory limit of 64 MiB reached"."""


class ExeUnitRuntime(Protocol):
    """One activity's exe unit."""

    async def deploy(self, options: DeployOptions) -> None:
        """Prepare the exe unit (create the container / compile the module, make the volumes)."""
        ...

    async def start(self, args: list[str]) -> None:
        """Start it; after this, ``run`` may be called."""
        ...

    async def run(self, entry_point: str, args: list[str], on_output: OutputCallback) -> RunResult:
        """Run one command to completion, streaming its output through ``on_output``."""
        ...

    def volumes(self) -> dict[str, Path]:
        """Paths inside the exe unit (e.g. ``/golem/input``) and the host folders behind them."""
        ...

    async def cpu_seconds(self) -> float:
        """CPU time used by the activity so far (``golem.usage.cpu_sec``)."""
        ...

    async def terminate(self) -> None:
        """Stop and remove everything this activity created; idempotent."""
        ...


class ByteChannel(Protocol):
    """A byte stream into the exe unit (a TCP connection to one of its ports)."""

    async def read(self) -> bytes:
        """The next bytes the exe unit sent; ``b""`` once it closed its side."""
        ...

    async def write(self, data: bytes) -> None:
        """Send ``data``, waiting while the exe unit is slow to take it."""
        ...

    async def write_eof(self) -> None:
        """Close our sending side (the exe unit reads end of file); reading goes on."""
        ...

    async def close(self) -> None:
        """Close both sides and free what the channel holds; idempotent."""
        ...


@runtime_checkable
class TcpReachable(Protocol):
    """A runtime whose exe units serve TCP ports to the provider (what a VPN tunnel ends in)."""

    async def connect(self, port: int) -> ByteChannel:
        """Open a connection to ``port`` inside the running exe unit; raises
        :class:`~exeunits.errors.RuntimeCommandError` when nothing can be reached there."""
        ...


class RuntimeFactory(Protocol):
    """Makes the exe units of one runtime name (``vm``, ``wasmtime``)."""

    name: str

    async def start(self) -> None:
        """Check the backend is usable and clean up what a crashed earlier run left behind."""
        ...

    async def create(self, spec: ActivitySpec) -> ExeUnitRuntime: ...

    async def close(self) -> None: ...
