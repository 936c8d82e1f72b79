"""What the blueprint end-to-end tests share: running a script while watching its output (to act
mid-run, e.g. kill a provider), killing a provider the way a crash would, and naming providers."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from blueprints.devnet_runner import remove_containers
from blueprints.localnet import Network, kill
from market.core.identity import keystore_address

SCRIPTS = Path(__file__).resolve().parents[2] / "blueprints" / "scripts"


async def run_watching(
    net: Network,
    script: Path,
    *args: str,
    on_line: Callable[[str], Awaitable[None]],
    timeout: float = 180,
) -> tuple[int, str, float]:
    """Run a yapapi script against ``net``, calling ``on_line`` with each line of its output as it
    comes; its exit code, its whole output and its wall time in seconds."""
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(script), *args, env=net.env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(timeout):
            while line := (await proc.stdout.readline()).decode(errors="replace"):
                lines.append(line)
                await on_line(line.rstrip("\n"))
            await proc.wait()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        lines.append(f"<<< killed by the test after {timeout:.0f} s >>>\n")
    assert proc.returncode is not None
    return proc.returncode, "".join(lines), time.perf_counter() - started


def provider_id(net: Network, name: str) -> str:
    """The node id (address) of provider ``name`` (``provider-N``), from its keystore."""
    return keystore_address(net.root / name / "identity" / "keystore.json").lower()


async def crash_provider(net: Network, name: str) -> None:
    """SIGKILL provider ``name`` and remove the containers it leaves behind (a real crash leaves
    them running; a test must not)."""
    await kill(net, name)
    await asyncio.to_thread(remove_containers, [provider_id(net, name)])
