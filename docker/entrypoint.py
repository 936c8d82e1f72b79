"""Entrypoint of the golem image: one image, the role chosen by the first argument.

    market     golem market serve on 0.0.0.0:7470 (data in $GOLEM_DATA_DIR/market)
    chain      anvil on 0.0.0.0:8545 with our token and batch contract; writes chain.env for the others
    provider   golem provider run (needs the Docker socket and a same-path data dir, see docker/README.md)
    requestor  golem requestor serve on 0.0.0.0:7465 (data in $GOLEM_DATA_DIR/requestor)

Extra arguments go to the role's golem command. Any other first argument runs as a command
(``docker run golem:latest golem provider status --url ...``).

Environment (all optional unless said):
    GOLEM_MARKET_URL         the market node's WebSocket, for provider and requestor [ws://market:7470/ws]
    GOLEM_CHAIN_ENV          a chain.env to wait for and load before provider/requestor start; unset on
                             a public testnet, where the <NET>_* variables are set directly
    GOLEM_CHAIN_WAIT         seconds to wait for it [300]
    GOLEM_CHAIN_NETWORK      the network the local chain stands in for (chain, funding) [holesky]
    GOLEM_CHAIN_RPC_URL      the chain's URL as the other containers reach it, written to chain.env
                             [http://chain:8545]
    GOLEM_PROVIDER_DATA_DIR  provider: its data dir, a host path bind-mounted at the same path (required)
    GOLEM_FUND_ON_START      requestor: 1 to get gas and test GLM from the chain's faucet before serving

This file is copied into the image; it is not part of the installed packages.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

DATA = Path(os.environ.get("GOLEM_DATA_DIR", "/var/lib/golem"))
MARKET_PORT = 7470
REQUESTOR_PORT = 7465
PROVIDER_STATUS_PORT = 7466
CHAIN_PORT = 8545
DEFAULT_MARKET_URL = "ws://market:7470/ws"
_EXPORT = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$")


def say(message: str) -> None:
    print(f"entrypoint: {message}", file=sys.stderr, flush=True)


def fail(message: str) -> None:
    say(message)
    sys.exit(1)


def run_golem(*args: str) -> None:
    """Replace this process with ``golem ARGS`` (signals then reach the daemon directly)."""
    say("golem " + " ".join(args))
    os.execvp("golem", ["golem", *args])


# --- shared by provider and requestor -----------------------------------------------------------------


def parse_env_file(text: str) -> dict[str, str]:
    """``export NAME=value`` lines (what :meth:`payments.devchain.ChainInfo.write` writes)."""
    found = {}
    for line in text.splitlines():
        match = _EXPORT.match(line)
        if match:
            found[match.group(1)] = match.group(2).strip().strip("'\"")
    return found


def load_chain_env() -> None:
    """Wait for ``$GOLEM_CHAIN_ENV`` and put its variables in the environment (a variable already
    set wins, so an operator can still point one of them elsewhere)."""
    path = os.environ.get("GOLEM_CHAIN_ENV")
    if not path:
        return
    wait = float(os.environ.get("GOLEM_CHAIN_WAIT", "300"))
    deadline = time.monotonic() + wait
    announced = False
    while not Path(path).is_file():
        if time.monotonic() > deadline:
            fail(f"{path} did not appear within {wait:.0f} s: is the chain container running?")
        if not announced:
            say(f"waiting for the chain's {path}")
            announced = True
        time.sleep(0.5)
    loaded = parse_env_file(Path(path).read_text())
    for name, value in loaded.items():
        os.environ.setdefault(name, value)
    say(f"chain settings from {path}: {', '.join(sorted(loaded))}")


# --- market -------------------------------------------------------------------------------------------


def market(args: list[str]) -> None:
    run_golem(
        "market", "serve", "--host", "0.0.0.0", "--port", str(MARKET_PORT),
        "--data-dir", str(DATA / "market"), *args,
    )  # fmt: skip


# --- chain --------------------------------------------------------------------------------------------


def chain(args: list[str]) -> None:
    """Run anvil on all interfaces, deploy (or find) the contracts, publish chain.env, stay with anvil.

    anvil keeps its state in the chain folder (``--state``), so a restarted chain container still
    holds the contracts and balances; the recorded addresses are reused when their code is there.
    ``payments.devchain.start`` is not used because it binds anvil to loopback only.
    """
    if args:
        fail(f"the chain role takes no arguments (got {' '.join(args)}); use the GOLEM_CHAIN_* variables")
    from decimal import Decimal

    from eth_account import Account

    from payments.devchain import ChainInfo, connect, deploy, find_anvil, set_gas_balance
    from payments.networks import NETWORKS

    network = os.environ.get("GOLEM_CHAIN_NETWORK", "holesky")
    if network not in NETWORKS:
        fail(f"unknown GOLEM_CHAIN_NETWORK {network!r}; known: {', '.join(NETWORKS)}")
    public_url = os.environ.get("GOLEM_CHAIN_RPC_URL", f"http://chain:{CHAIN_PORT}")
    folder = DATA / "chain"
    folder.mkdir(parents=True, exist_ok=True)
    # Nobody may read the previous run's chain.env while this chain is not up yet.
    (folder / "chain.env").unlink(missing_ok=True)
    chain_id = NETWORKS[network].chain_id
    command = [
        str(find_anvil()), "--host", "0.0.0.0", "--port", str(CHAIN_PORT), "--chain-id", str(chain_id),
        "--accounts", "0", "--silent", "--state", str(folder / "anvil-state.json"), "--state-interval", "5",
    ]  # fmt: skip
    anvil = subprocess.Popen(command, stdin=subprocess.DEVNULL)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: anvil.send_signal(signal.SIGINT))
    w3 = connect(f"http://127.0.0.1:{CHAIN_PORT}")
    deadline = time.monotonic() + 30
    while True:
        if anvil.poll() is not None:
            fail(f"anvil exited with {anvil.returncode}")
        with contextlib.suppress(Exception):
            if w3.eth.chain_id == chain_id:
                break
        if time.monotonic() > deadline:
            anvil.kill()
            fail("anvil did not answer within 30 s")
        time.sleep(0.1)
    known = ChainInfo.read(folder)
    if (
        known is not None
        and known.network == network
        and w3.eth.get_code(w3.to_checksum_address(known.token))
        and w3.eth.get_code(w3.to_checksum_address(known.multi_transfer))
    ):
        token, multi = known.token, known.multi_transfer
        say(f"contracts found from an earlier run: token {token}, batch {multi}")
    else:
        deployer = Account.create()
        set_gas_balance(w3, deployer.address, Decimal(100))
        key = deployer.key.to_0x_hex()
        token = deploy(w3, key, "TestGLM", "Test Golem Network Token", "tGLM")
        multi = deploy(w3, key, "MultiTransfer", token)
        say(f"deployed token {token}, batch {multi}")
    info = ChainInfo(
        network=network,
        chain_id=chain_id,
        rpc_url=public_url,
        token=token,
        multi_transfer=multi,
        faucet=token,
        pid=anvil.pid,
        block_time=None,
    )
    # Written beside and renamed into place: a reader sees no file or a whole one.
    staging = folder / ".staging"
    info.write(staging)
    for name in ("chain.json", "chain.env"):
        (staging / name).replace(folder / name)
    staging.rmdir()
    print(f"chain ready: {network} (chain id {chain_id}) at {public_url}, token {token}", flush=True)
    sys.exit(anvil.wait())


# --- provider -----------------------------------------------------------------------------------------


def container_id() -> str | None:
    """This container's id, from the bind mount Docker makes for /etc/hostname."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            found = re.search(r"/containers/([0-9a-f]{64})/", line)
            if found:
                return found.group(1)
    return None


def check_same_path(data_dir: Path) -> None:
    """Refuse a provider data dir that is not bind-mounted from the same host path.

    Exe units are containers the *host's* engine creates; their volumes are bind mounts of folders
    under the data dir, named by the path the provider sees. Only when that path is also the host's
    do they get the activity's files.
    """
    ident = container_id()
    if ident is None:
        say("cannot tell this container's id; not checking that the data dir is a same-path mount")
        return
    import docker

    try:
        mounts = docker.from_env().api.inspect_container(ident)["Mounts"]
    except Exception as exc:  # the runtime reports an unreachable engine itself, with more detail
        say(f"cannot inspect this container through the Docker socket ({exc}); not checking the data dir")
        return
    for mount in mounts:
        destination = Path(mount["Destination"])
        if data_dir == destination or destination in data_dir.parents:
            expected = Path(mount["Source"]) / data_dir.relative_to(destination)
            if mount.get("Type") != "bind" or expected != data_dir:
                fail(
                    f"the provider data dir {data_dir} is mounted from {mount['Source']} "
                    f"({mount.get('Type')}); mount a host folder at the same path inside and outside, "
                    f"e.g. -v {data_dir}:{data_dir}"
                )
            return
    fail(f"the provider data dir {data_dir} is not a mount; use -v {data_dir}:{data_dir}")


def provider(args: list[str]) -> None:
    data_dir = os.environ.get("GOLEM_PROVIDER_DATA_DIR")
    if not data_dir or not os.path.isabs(data_dir):
        fail("set GOLEM_PROVIDER_DATA_DIR to an absolute host path mounted at the same path")
    assert data_dir is not None
    if not Path("/var/run/docker.sock").exists():
        say("no /var/run/docker.sock: the vm runtime will be unavailable (mount the host's socket)")
    else:
        check_same_path(Path(data_dir))
    load_chain_env()
    # Inside a container the status API has to listen beyond loopback to be published at all;
    # publish it on the host's loopback only (it is unauthenticated).
    os.environ.setdefault("GOLEM_PROVIDER_STATUS_HOST", "0.0.0.0")
    run_golem(
        "provider", "run", "--market", os.environ.get("GOLEM_MARKET_URL", DEFAULT_MARKET_URL),
        "--data-dir", data_dir, "--status-port", str(PROVIDER_STATUS_PORT), *args,
    )  # fmt: skip


# --- requestor ----------------------------------------------------------------------------------------


def requestor(args: list[str]) -> None:
    data_dir = Path(os.environ.get("GOLEM_REQUESTOR_DATA_DIR", str(DATA / "requestor")))
    load_chain_env()
    from requestor.cli import ensure_keystore
    from requestor.config import RequestorConfig

    node_id = ensure_keystore(RequestorConfig(data_dir=data_dir))
    if os.environ.get("GOLEM_FUND_ON_START") == "1":
        network = os.environ.get("GOLEM_CHAIN_NETWORK", "holesky")
        say(f"funding {node_id} on {network}")
        funded = subprocess.run(
            ["golem", "payments", "fund", "--data-dir", str(data_dir), "--network", network], check=False
        )
        if funded.returncode != 0:
            fail("funding failed; see above")
    run_golem(
        "requestor", "serve", "--host", "0.0.0.0", "--port", str(REQUESTOR_PORT),
        "--market", os.environ.get("GOLEM_MARKET_URL", DEFAULT_MARKET_URL), "--data-dir", str(data_dir),
        *args,
    )  # fmt: skip


ROLES: dict[str, Callable[[list[str]], None]] = {
    "market": market,
    "chain": chain,
    "provider": provider,
    "requestor": requestor,
}


def main(argv: list[str]) -> None:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(__doc__)
        return
    role, *rest = argv
    if role in ROLES:
        ROLES[role](rest)
        return
    os.execvp(role, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
