"""Run a blueprint against the running devnet with one command.

    golem devnet up                      # once: chain, market node, providers, requestor
    python -m blueprints.run fractal     # or: service, wasm, scan
    python -m blueprints.run fractal --size 480x320 --tiles 16    # more arguments go to the script

It reads the devnet's record (``<dir>/devnet.json``, default dir ``$GOLEM_DATA_DIR/devnet``, or
``--dir``) for the market node's and requestor's addresses, builds what the blueprint needs from
the repo (the payload image with :mod:`blueprints.payloads`, the WASM module with
:mod:`blueprints.wasm`; both reused when unchanged, under ``<dir>/blueprints``), pushes it to the
market node's package registry, and runs the script with the devnet's environment (the same
variables ``<dir>/env`` exports), its image named by hash and resolved through that registry.
The exit code is the script's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from blueprints import devnet_runner
from market.core.errors import GolemError
from market.core.processes import alive
from payments.devchain import ChainInfo

SCRIPTS = Path(__file__).resolve().parent / "scripts"
BIN = Path(sys.executable).parent


class BlueprintRunError(GolemError):
    """No usable devnet, or the blueprint's payload could not be built or pushed."""


@dataclass(frozen=True)
class Blueprint:
    script: str
    needs: str
    """What it needs built and pushed: "image", "wasm" or nothing."""
    runtime: str
    """The runtime its providers must offer."""
    summary: str


BLUEPRINTS = {
    "fractal": Blueprint("fractal.py", "image", "vm", "a Mandelbrot PNG rendered in tiles (task model)"),
    "service": Blueprint(
        "service_failover.py", "image", "vm", "stateful service instances, restarted elsewhere on failure"
    ),
    "wasm": Blueprint("wasm_tasks.py", "wasm", "wasmtime", "primes counted by a WASM module (task model)"),
    "scan": Blueprint("market_scan.py", "", "", "the offers on the network and their prices"),
}


def default_dir() -> Path:
    from blueprints.devnet import default_devnet_dir

    return default_devnet_dir()


def load_devnet(folder: Path) -> tuple[devnet_runner.Devnet, ChainInfo]:
    """The running devnet in ``folder`` and its chain; BlueprintRunError saying what to do if none."""
    net = devnet_runner.Devnet.load(folder)
    chain = ChainInfo.read(folder / "chain")
    if net is None or chain is None:
        raise BlueprintRunError(f"no devnet in {folder}; start one with `golem devnet up`")
    down = [name for name in ("market", "requestor") if not _alive(net, name)]
    if down:
        raise BlueprintRunError(
            f"the devnet in {folder} is not running ({', '.join(down)} down); `golem devnet up` starts it"
        )
    return net, chain


def _alive(net: devnet_runner.Devnet, name: str) -> bool:
    part = net.part(name)
    return part is not None and alive(part.pid)


async def _push(market_url: str, path: Path) -> dict[str, Any]:
    from market.hub.registry_client import push

    return await push(market_url, path)


def publish(net: devnet_runner.Devnet, needs: str, say: Any = print) -> dict[str, Any]:
    """Build what a blueprint needs and push it to the devnet's registry; the registry's answer
    (``hash``, ``url``, ...), or {} when it needs nothing."""
    if not needs:
        return {}
    market = net.part("market")
    assert market is not None  # load_devnet checked it
    out = Path(net.folder) / "blueprints"
    try:
        if needs == "image":
            from blueprints.payloads import build

            path = build(out).archive
        else:
            from blueprints.wasm import build as build_wasm

            [module] = build_wasm(out, ["primes"])
            path = module.path
        answer = asyncio.run(_push(market.url, path))
    except GolemError as exc:
        raise BlueprintRunError(f"cannot publish {needs}: {exc}") from exc
    say(f"pushed {path.name} to {market.url}: {answer['hash']}")
    return answer


def script_args(name: str, net: devnet_runner.Devnet, package: dict[str, Any]) -> list[str]:
    """The arguments that point a blueprint script at the devnet and its package."""
    market = net.part("market")
    assert market is not None
    subnet = ["--subnet-tag", net.subnet]
    if name in ("fractal", "service"):
        return ["--image-hash", package["hash"], "--registry", market.url, *subnet]
    if name == "wasm":
        return ["--module-hash", package["hash"], "--module-url", package["url"], *subnet]
    return subnet


def run(name: str, folder: Path, extra: Sequence[str]) -> int:
    blueprint = BLUEPRINTS[name]
    net, chain = load_devnet(folder)
    if blueprint.runtime and blueprint.runtime not in net.runtimes:
        raise BlueprintRunError(
            f"{name} needs {blueprint.runtime} providers; this devnet runs {', '.join(net.runtimes)}"
        )
    package = publish(net, blueprint.needs)
    env = {
        **os.environ,
        **devnet_runner.environment(net, chain),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # yapapi starts our gftp
        "PYTHONUNBUFFERED": "1",
    }
    command = [sys.executable, str(SCRIPTS / blueprint.script), *script_args(name, net, package), *extra]
    return subprocess.run(command, env=env, check=False).returncode


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m blueprints.run",
        description="Run a blueprint against the running devnet (`golem devnet up`).",
        epilog="\n".join(f"{n:8} {b.summary}" for n, b in BLUEPRINTS.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("blueprint", choices=sorted(BLUEPRINTS))
    parser.add_argument("--dir", type=Path, help="the devnet's folder [default: $GOLEM_DATA_DIR/devnet]")
    args, extra = parser.parse_known_args(argv)
    try:
        code = run(args.blueprint, (args.dir or default_dir()).resolve(), extra)
    except GolemError as exc:
        sys.exit(f"error: {exc}")
    sys.exit(code)


if __name__ == "__main__":
    main()
