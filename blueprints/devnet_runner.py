"""The whole local network behind ``golem devnet up|status|down``, as processes that outlive the command.

:func:`up` starts, on loopback, a local chain (:mod:`payments.devchain`), a market node, N provider
daemons (each with its own identity, data dir and name ``provider-1..N``) and a requestor daemon
whose account is funded from the token's faucet; it waits until the providers' offers are on the
market and writes what a shell needs (``<folder>/env``: ``YAGNA_APPKEY``, ``YAGNA_API_URL`` and the
chain's overrides). Every part runs in its own session, logs to ``<folder>/<name>.log`` and is
recorded in ``<folder>/devnet.json``, so :func:`status` can check each one and :func:`down` can stop
them all, remove any container a provider left behind, and check that no port stays open.
Re-running :func:`up` on a running devnet starts only what is missing.

Unlike :mod:`blueprints.localnet` (an ``async with`` network for one test or one quickstart run),
this one is meant to stay up while a developer works against it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from market.core.errors import GolemError
from market.core.identity import keystore_address
from market.core.processes import alive
from payments import devchain
from payments.devchain import ChainInfo

GOLEM = [sys.executable, "-c", "from market.cli import main; main()"]
STATE_FILE = "devnet.json"
ENV_FILE = "env"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
PAYMENT_CYCLE_SECS = "5"
"""How often the devnet requestor pays what it accepted (a public network: minutes to hours)."""
RUNTIMES = ("vm", "wasmtime")


class DevnetError(GolemError):
    """A part of the devnet could not be started, reached or stopped."""


@dataclass
class Part:
    """One process of the devnet."""

    name: str
    pid: int
    log: str
    url: str = ""
    """Where it answers: the market node's and requestor's HTTP root, a provider's status API."""
    port: int = 0


@dataclass
class Devnet:
    """What ``devnet.json`` records."""

    folder: str
    subnet: str
    runtimes: list[str]
    parts: list[Part] = field(default_factory=list)
    app_key: str = ""
    requestor_id: str = ""
    provider_ids: list[str] = field(default_factory=list)

    def part(self, name: str) -> Part | None:
        return next((p for p in self.parts if p.name == name), None)

    @property
    def market_ws(self) -> str:
        market = self.part("market")
        return "" if market is None else market.url.replace("http://", "ws://") + "/ws"

    def save(self) -> None:
        path = Path(self.folder) / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1) + "\n")
        tmp.replace(path)

    @classmethod
    def load(cls, folder: Path) -> Devnet | None:
        path = folder / STATE_FILE
        if not path.is_file():
            return None
        try:
            body = json.loads(path.read_text())
            body["parts"] = [Part(**p) for p in body.get("parts", [])]
            return cls(**body)
        except (ValueError, TypeError) as exc:
            raise DevnetError(f"{path} is not a devnet record: {exc}") from None


def _spawn(folder: Path, name: str, args: Sequence[str], env: Mapping[str, str]) -> tuple[int, Path]:
    log = folder / f"{name}.log"
    with open(log, "ab") as out, open(os.devnull, "rb") as devnull:
        proc = subprocess.Popen(
            [*GOLEM, *args], stdout=out, stderr=subprocess.STDOUT, stdin=devnull, env=dict(env),
            start_new_session=True,
        )  # fmt: skip
    return proc.pid, log


def _wait_for(log: Path, pid: int, pattern: str, start: int, timeout: float = START_TIMEOUT) -> re.Match[str]:
    """The first match of ``pattern`` in ``log`` after byte ``start``; an error if the process dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_bytes()[start:].decode(errors="replace")
        found = re.search(pattern, text, re.MULTILINE)
        if found:
            return found
        if not alive(pid):
            raise DevnetError(f"{log.stem} exited while starting:\n{text[-2000:]}")
        time.sleep(0.1)
    raise DevnetError(f"{log.stem} did not start within {timeout:.0f} s (log: {log})")


@dataclass
class _Launch:
    name: str
    pid: int
    log: Path
    start: int
    pattern: str


def _launch(net: Devnet, name: str, args: Sequence[str], env: Mapping[str, str], pattern: str) -> _Launch:
    """Spawn one part without waiting for it (parts start side by side)."""
    folder = Path(net.folder)
    log = folder / f"{name}.log"
    start = log.stat().st_size if log.exists() else 0
    pid, log = _spawn(folder, name, args, env)
    net.parts = [p for p in net.parts if p.name != name]
    net.parts.append(Part(name=name, pid=pid, log=str(log)))
    net.save()
    return _Launch(name, pid, log, start, pattern)


def _ready(net: Devnet, launch: _Launch) -> None:
    """Wait until a launched part says where it listens, and record that."""
    found = _wait_for(launch.log, launch.pid, launch.pattern, launch.start)
    part = net.part(launch.name)
    assert part is not None
    part.url = found.group(1)
    net.save()


def _http_json(url: str, headers: Mapping[str, str] | None = None, timeout: float = 3.0) -> Any:
    request = urllib.request.Request(url, headers=dict(headers or {}))
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def _running(net: Devnet, name: str) -> bool:
    part = net.part(name)
    return part is not None and alive(part.pid)


def up(
    folder: Path,
    *,
    providers: int = 2,
    runtimes: Sequence[str] = RUNTIMES,
    subnet: str = "public",
    network: str = "holesky",
    market_port: int = 7470,
    requestor_port: int = 7465,
    chain_port: int = 8545,
    say: Callable[[str], None] = print,
) -> Devnet:
    """Start whatever part of the devnet in ``folder`` is not running; the devnet's record."""
    unknown = sorted(set(runtimes) - set(RUNTIMES))
    if unknown or not runtimes:
        raise DevnetError(f"unknown runtime(s) {unknown or runtimes}; choose from {', '.join(RUNTIMES)}")
    if providers < 0:
        raise DevnetError("--providers must be zero or more")
    folder = folder.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    net = Devnet.load(folder) or Devnet(folder=str(folder), subnet=subnet, runtimes=list(runtimes))
    if any(alive(p.pid) for p in net.parts) and (net.subnet, net.runtimes) != (subnet, list(runtimes)):
        raise DevnetError(
            f"a devnet with subnet {net.subnet} and runtimes {','.join(net.runtimes)} runs in {folder}; "
            "`golem devnet down` it first"
        )
    net.subnet, net.runtimes = subnet, list(runtimes)

    chain = devchain.start(folder / "chain", network=network, port=chain_port or None)
    say(f"chain      {chain.rpc_url} (chain id {chain.chain_id}, {chain.platform})")
    base_env = {**os.environ, **chain.env(), "GOLEM_LOG_LEVEL": "INFO"}

    if not _running(net, "market"):
        market_args = ["market", "serve", "--port", str(market_port), "--data-dir", str(folder / "market")]
        _ready(net, _launch(net, "market", market_args, base_env, r"listening on (http://\S+)"))
    market = net.part("market")
    assert market is not None
    say(f"market     {market.url}")

    # Providers and the requestor start side by side; each is waited for afterwards.
    launches: list[_Launch] = []
    provider_env = {
        **base_env,
        "GOLEM_PROVIDER_PAYMENT_PLATFORM": chain.platform,
        "GOLEM_PROVIDER_RUNTIMES": json.dumps(list(runtimes)),
    }
    for n in range(1, providers + 1):
        name = f"provider-{n}"
        if not _running(net, name):
            args = ["provider", "run", "--market", net.market_ws, "--data-dir", str(folder / name),
                    "--name", name, "--subnet", subnet, "--status-port", "0"]  # fmt: skip
            launches.append(_launch(net, name, args, provider_env, r"status API (http://\S+?),"))

    requestor_data = folder / "requestor"
    if not net.app_key:
        created = subprocess.run(
            [*GOLEM, "requestor", "app-key", "create", "devnet", "--json", "--data-dir", str(requestor_data)],
            capture_output=True, text=True, check=False, env=base_env,
        )  # fmt: skip
        if created.returncode != 0:
            raise DevnetError(f"cannot create the requestor's app key: {created.stderr.strip()}")
        net.app_key = json.loads(created.stdout)["key"]
        net.requestor_id = json.loads(created.stdout)["identity"]
        net.save()
    balance = devchain.fund_address(chain, net.requestor_id)
    if not _running(net, "requestor"):
        requestor_env = {
            **base_env,
            "GOLEM_REQUESTOR_PAYMENT_PLATFORMS": chain.platform,
            "GOLEM_PAYMENT_CYCLE_SECS": PAYMENT_CYCLE_SECS,
        }
        args = ["requestor", "serve", "--market", net.market_ws, "--data-dir", str(requestor_data),
                "--port", str(requestor_port)]  # fmt: skip
        launches.append(
            _launch(net, "requestor", args, requestor_env, r"listening on (http://127\.0\.0\.1:\d+)")
        )
    for launch in launches:
        _ready(net, launch)

    net.provider_ids = [
        keystore_address(folder / f"provider-{n}" / "identity" / "keystore.json")
        for n in range(1, providers + 1)
    ]
    for n in range(1, providers + 1):
        say(f"provider-{n} {net.part(f'provider-{n}').url}")  # type: ignore[union-attr]
    say(f"requestor  {net.part('requestor').url} ({net.requestor_id}, {balance} tGLM)")  # type: ignore[union-attr]

    _wait_for_offers(net, providers * len(runtimes))
    _write_env(net, chain)
    return net


def _wait_for_offers(net: Devnet, expected: int, timeout: float = 30.0) -> int:
    market = net.part("market")
    assert market is not None
    deadline = time.monotonic() + timeout
    seen = 0
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            offers = _http_json(f"{market.url}/market/v1/offers?limit=500")
            seen = sum(1 for o in offers["items"] if o["providerId"] in net.provider_ids)
            if seen >= expected:
                return seen
        time.sleep(0.2)
    raise DevnetError(f"only {seen} of {expected} offers reached the market within {timeout:.0f} s")


def environment(net: Devnet, chain: ChainInfo) -> dict[str, str]:
    """What a shell exports to run yapapi scripts and ``golem`` commands against this devnet."""
    requestor = net.part("requestor")
    driver, network = chain.platform.split("-")[:2]
    return {
        "YAGNA_APPKEY": net.app_key,
        "YAGNA_API_URL": requestor.url if requestor else "",
        "YAGNA_PAYMENT_DRIVER": driver,
        "YAGNA_PAYMENT_NETWORK": network,
        "YAGNA_SUBNET": net.subnet,
        **chain.env(),
    }


def _write_env(net: Devnet, chain: ChainInfo) -> None:
    lines = [f"export {k}={shlex.quote(v)}" for k, v in environment(net, chain).items()]
    path = Path(net.folder) / ENV_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds the app key
    with os.fdopen(fd, "w") as fh:
        fh.write("\n".join(lines) + "\n")


@dataclass(frozen=True)
class Health:
    name: str
    pid: int
    running: bool
    answering: bool
    url: str
    detail: str


def status(folder: Path) -> list[Health]:
    """Every part of the devnet in ``folder``: its process, and whether it answers."""
    folder = folder.resolve()
    net = Devnet.load(folder)
    checks: list[Health] = []
    chain = devchain.ChainInfo.read(folder / "chain")
    if chain is not None and (alive(chain.pid) or (net is not None and net.parts)):
        up_ = devchain.status(folder / "chain") is not None
        checks.append(
            Health("chain", chain.pid, alive(chain.pid), up_, chain.rpc_url, f"chain id {chain.chain_id}")
        )
    if net is None:
        return checks
    for part in net.parts:
        running = alive(part.pid)
        answering, detail = False, ""
        if running:
            answering, detail = _probe(net, part)
        checks.append(Health(part.name, part.pid, running, answering, part.url, detail))
    return checks


def _probe(net: Devnet, part: Part) -> tuple[bool, str]:
    try:
        if part.name == "market":
            stats = _http_json(f"{part.url}/market/v1/stats")
            return True, f"{stats['offers']} offers, {stats['connectedNodes']} nodes connected"
        if part.name == "requestor":
            me = _http_json(f"{part.url}/me", {"Authorization": f"Bearer {net.app_key}"})
            return True, f"identity {me['identity']}"
        health = _http_json(f"{part.url}/health")
        market = "connected" if health.get("marketConnected") else "NOT connected to the market"
        return True, f"{health['offers']} offers, {health['activeAgreements']} agreements, {market}"
    except (OSError, ValueError, KeyError) as exc:
        return False, str(exc)


def down(folder: Path, say: Callable[[str], None] = print) -> bool:
    """Stop everything the devnet in ``folder`` runs; False if nothing was running.

    Daemons get SIGTERM (a provider destroys its exe units on the way out), then SIGKILL after
    :data:`STOP_TIMEOUT`; containers a provider left behind are removed; the chain is stopped.
    """
    folder = folder.resolve()
    net = Devnet.load(folder)
    stopped = False
    if net is not None:
        running = [p for p in reversed(net.parts) if alive(p.pid)]
        for part in running:
            stopped = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(part.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for part in running:
            while alive(part.pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if alive(part.pid):
                say(f"{part.name} did not stop in {STOP_TIMEOUT:.0f} s; killing it")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(part.pid, signal.SIGKILL)
            say(f"stopped {part.name}")
        removed = remove_containers(net.provider_ids)
        if removed:
            say(f"removed {removed} container(s) left by the providers")
        net.parts = []
        net.save()
    if devchain.stop(folder / "chain"):
        stopped = True
        say("stopped chain")
    return stopped


def remove_containers(provider_ids: Sequence[str]) -> int:
    """Remove the exe-unit containers of these providers (labelled with their owner); how many."""
    if not provider_ids:
        return 0
    try:
        import docker

        client = docker.from_env()
    except Exception:  # no engine, nothing of ours can be running on it
        return 0
    removed = 0
    try:
        for provider_id in provider_ids:
            owner = f"golem.exeunit-owner=provider-{provider_id}"
            for container in client.containers.list(all=True, filters={"label": owner}):
                with contextlib.suppress(Exception):
                    container.remove(force=True)
                    removed += 1
    finally:
        client.close()
    return removed


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def ports(net: Devnet) -> list[int]:
    """The loopback ports the devnet's parts listen on (from their URLs)."""
    found = []
    for part in net.parts:
        match = re.search(r":(\d+)", part.url.removeprefix("http://"))
        if match:
            found.append(int(match.group(1)))
    return found


def state_of(folder: Path) -> dict[str, Any]:
    """``status`` as JSON-able data."""
    return {"folder": str(folder.resolve()), "parts": [asdict(h) for h in status(folder)]}


def wait_gone(pids: Sequence[int], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not any(alive(p) for p in pids)


__all__ = [
    "Devnet",
    "DevnetError",
    "Health",
    "down",
    "environment",
    "port_open",
    "ports",
    "remove_containers",
    "state_of",
    "status",
    "up",
]
