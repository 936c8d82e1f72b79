"""What the machine can offer: CPU threads, memory and free storage of the data dir.

Detected with :mod:`os` and :mod:`shutil` (psutil is used for physical cores when installed) and
capped by the provider's configuration, so an operator can offer less than the machine has.
"""

from __future__ import annotations

import os
import platform
import shutil
from dataclasses import dataclass
from pathlib import Path

GIB = 1024**3


@dataclass(frozen=True)
class Hardware:
    """Resources advertised in the offer (``golem.inf.*``)."""

    threads: int
    cores: int
    memory_gib: float
    storage_gib: float
    architecture: str


def _physical_cores(threads: int) -> int:
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil ships with the test extras
        return threads
    cores = psutil.cpu_count(logical=False)
    return int(cores) if cores else threads


def _memory_bytes() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        import psutil

        return int(psutil.virtual_memory().total)


def _architecture() -> str:
    machine = platform.machine().lower()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine or "unknown")


def _floor2(value: float) -> float:
    return int(value * 100) / 100


def detect_hardware(
    data_dir: Path,
    *,
    max_threads: int | None = None,
    max_memory_gib: float | None = None,
    max_storage_gib: float | None = None,
) -> Hardware:
    """Measure this machine, then apply the caps; storage is the free space where ``data_dir`` lives."""
    threads = os.cpu_count() or 1
    cores = min(_physical_cores(threads), threads)
    memory = _memory_bytes() / GIB
    probe = data_dir
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    storage = shutil.disk_usage(probe).free / GIB
    if max_threads is not None:
        threads = min(threads, max_threads)
        cores = min(cores, threads)
    if max_memory_gib is not None:
        memory = min(memory, max_memory_gib)
    if max_storage_gib is not None:
        storage = min(storage, max_storage_gib)
    return Hardware(
        threads=threads,
        cores=max(cores, 1),
        memory_gib=_floor2(memory),
        storage_gib=_floor2(storage),
        architecture=_architecture(),
    )
