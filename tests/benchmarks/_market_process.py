"""Run a market node as a separate process for benchmarks, so it does not share the measuring
process's event loop and CPU the way an in-process node would."""

from __future__ import annotations

import asyncio
import os
import re
import resource
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class MarketProcess:
    def __init__(self, *extra: str) -> None:
        self.extra = extra
        self.proc: asyncio.subprocess.Process | None = None
        self.url = ""
        self.ws_url = ""

    async def __aenter__(self) -> MarketProcess:
        raise_fd_limit()
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "from market.cli import main; main()",
            "market",
            "serve",
            "--port",
            "0",
            *self.extra,
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
            env=dict(os.environ, GOLEM_LOG_LEVEL="WARNING"),
        )
        assert self.proc.stdout is not None
        line = (await asyncio.wait_for(self.proc.stdout.readline(), 30)).decode()
        found = re.search(r"listening on (http://\S+)", line)
        if not found:
            raise RuntimeError(f"market node did not start: {line!r}")
        self.url = found.group(1)
        self.ws_url = self.url.replace("http://", "ws://") + "/ws"
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def __aexit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            await self.proc.wait()
