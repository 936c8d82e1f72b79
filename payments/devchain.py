"""A local EVM chain for development and tests: anvil, our contracts deployed, accounts funded.

:func:`start` launches anvil (the native binary of npm ``@foundry-rs/anvil``, which the setup
command installs under ``.tools/``) with the chain id of the network it stands in for, deploys the
test GLM token and the batch-transfer contract from a throw-away deployer key, and writes
``chain.json`` (what :class:`ChainInfo` holds) and ``chain.env`` (the variables that point the
network's real platform name at this chain, see :func:`payments.networks.env_overrides`) into the
chain's folder, where the daemons and ``golem devnet`` read them. :func:`stop` ends it;
:func:`status` says whether it is up.

Gas coin comes from anvil's ``anvil_setBalance``; tokens from the token's own faucet (``create()``),
called by the funded account itself, so funding works the way it does on a public testnet.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from eth_account import Account
from web3 import Web3
from web3.exceptions import ContractLogicError

from market.core.processes import alive
from payments.contracts import load
from payments.errors import DriverError
from payments.networks import NETWORKS, env_overrides

ANVIL_RELATIVE = Path(".tools/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil")
WEI = 10**18
DEFAULT_GAS_COIN = 100
"""Gas coin (ETH) an account gets from :func:`fund`; plenty for thousands of payments."""


class ChainError(DriverError):
    """The local chain could not be started, reached or used."""


def find_anvil() -> Path:
    """The anvil binary: ``GOLEM_ANVIL``, the repo's ``.tools`` install, or ``anvil`` on PATH."""
    explicit = os.environ.get("GOLEM_ANVIL")
    candidates = [Path(explicit)] if explicit else []
    candidates.append(Path(__file__).resolve().parents[1] / ANVIL_RELATIVE)
    if found := shutil.which("anvil"):
        candidates.append(Path(found))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise ChainError(
        "anvil not found: run scripts/setup (it installs npm @foundry-rs/anvil under .tools/) "
        "or set GOLEM_ANVIL to the binary"
    )


@dataclass(frozen=True)
class ChainInfo:
    """What ``chain.json`` records about a running local chain."""

    network: str
    chain_id: int
    rpc_url: str
    token: str
    multi_transfer: str
    faucet: str
    pid: int
    block_time: float | None

    @property
    def platform(self) -> str:
        return NETWORKS[self.network].platform

    def env(self) -> dict[str, str]:
        """Variables that make ``erc20-<network>-tglm`` pay on this chain."""
        return env_overrides(
            self.network,
            rpc_url=self.rpc_url,
            token=self.token,
            faucet=self.faucet,
            multi=self.multi_transfer,
        )

    def write(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "chain.json").write_text(json.dumps(asdict(self), indent=1) + "\n")
        lines = [f"export {k}={v}" for k, v in sorted(self.env().items())]
        (folder / "chain.env").write_text("\n".join(lines) + "\n")

    @classmethod
    def read(cls, folder: Path) -> ChainInfo | None:
        path = folder / "chain.json"
        if not path.is_file():
            return None
        try:
            return cls(**json.loads(path.read_text()))
        except (ValueError, TypeError) as exc:
            raise ChainError(f"{path} is not a chain description: {exc}") from None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def connect(rpc_url: str, timeout: float = 10.0) -> Web3:
    return Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout}))


def _wait_ready(w3: Web3, proc: subprocess.Popen[bytes], log_path: Path, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text()[-2000:] if log_path.exists() else ""
            raise ChainError(f"anvil exited with {proc.returncode}: {tail}")
        try:
            block = w3.eth.block_number if w3.is_connected() else None
        except Exception:  # not listening yet
            block = None
        if block == 0:
            return
        if block is not None:
            # Past block 0 already: interval mining, or another node that took the port between
            # our check and anvil's bind. An anvil that cannot bind exits at once; give it time to.
            time.sleep(0.3)
            if proc.poll() is None:
                return
        time.sleep(0.05)
    raise ChainError(f"anvil did not answer within {timeout:.0f} s (log: {log_path})")


def _check_port_free(port: int) -> None:
    """Refuse a port something already listens on: anvil would exit, and the node that answers
    there (another chain, perhaps) would get our contracts deployed to it."""
    with socket.socket() as sock:
        # As a server does: a port left only in TIME_WAIT by a stopped chain is free to reuse.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise ChainError(
                f"port {port} on 127.0.0.1 is in use ({exc.strerror}); choose another port "
                "(0 picks a free one) or stop what listens there"
            ) from None


def _send(w3: Web3, key: str, tx: dict[str, Any]) -> Any:
    account = Account.from_key(key)
    tx.setdefault("from", account.address)
    tx.setdefault("nonce", w3.eth.get_transaction_count(account.address, "pending"))
    tx.setdefault("chainId", w3.eth.chain_id)
    if "gas" not in tx:
        tx["gas"] = w3.eth.estimate_gas(tx) + 20_000  # type: ignore[arg-type]
    signed = account.sign_transaction(tx)
    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60, poll_latency=0.02)
    if receipt["status"] != 1:
        raise ChainError(f"transaction {tx_hash.to_0x_hex()} failed on chain")
    return receipt


def deploy(w3: Web3, key: str, name: str, *args: Any) -> str:
    """Deploy one of our contracts from ``key``; its address."""
    artifact = load(name)
    factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    tx = factory.constructor(*args).build_transaction({"from": Account.from_key(key).address})
    receipt = _send(w3, key, dict(tx))
    return str(receipt["contractAddress"])


def start(
    folder: Path,
    *,
    network: str = "holesky",
    port: int | None = None,
    block_time: float | None = None,
) -> ChainInfo:
    """Start anvil standing in for ``network``, deploy the contracts, record it in ``folder``.

    Harmless when the chain recorded in ``folder`` is still running: that one is returned.
    """
    if network not in NETWORKS:
        raise ChainError(f"unknown network {network!r}; known: {', '.join(NETWORKS)}")
    known = status(folder)
    if known is not None:
        if known.network != network:
            raise ChainError(
                f"a chain standing in for {known.network} is already running in {folder}; "
                f"stop it before starting one for {network}"
            )
        return known
    folder.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    _check_port_free(port)
    chain_id = NETWORKS[network].chain_id
    log_path = folder / "anvil.log"
    command = [
        str(find_anvil()),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--chain-id",
        str(chain_id),
        "--accounts",
        "0",
        "--silent",
    ]
    if block_time is not None:
        command += ["--block-time", f"{block_time:g}"]
    with open(log_path, "wb") as log, open(os.devnull, "rb") as devnull:
        proc = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=devnull, start_new_session=True
        )
    rpc_url = f"http://127.0.0.1:{port}"
    w3 = connect(rpc_url)
    try:
        _wait_ready(w3, proc, log_path)
        deployer = Account.create()
        set_gas_balance(w3, deployer.address, Decimal(DEFAULT_GAS_COIN))
        key = deployer.key.to_0x_hex()
        token = deploy(w3, key, "TestGLM", "Test Golem Network Token", "tGLM")
        multi = deploy(w3, key, "MultiTransfer", token)
    except BaseException:
        proc.terminate()
        proc.wait(5)
        raise
    info = ChainInfo(
        network=network,
        chain_id=chain_id,
        rpc_url=rpc_url,
        token=token,
        multi_transfer=multi,
        faucet=token,
        pid=proc.pid,
        block_time=block_time,
    )
    info.write(folder)
    _LAUNCHED[proc.pid] = proc
    return info


_LAUNCHED: dict[int, subprocess.Popen[bytes]] = {}
"""Chains this process started and has not stopped. Holding the ``Popen`` keeps it from being
collected while anvil runs (which warns) and lets :func:`stop` reap the exit status through it."""


def _reap(pid: int, launched: subprocess.Popen[bytes] | None, *, block: bool) -> None:
    """Collect the exit status of a stopped chain that is our child, so no zombie is left."""
    if launched is not None:
        if block:
            launched.wait()
        else:
            launched.poll()
        return
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0 if block else os.WNOHANG)


def status(folder: Path) -> ChainInfo | None:
    """The chain recorded in ``folder`` if its process is alive and answers, else ``None``."""
    info = ChainInfo.read(folder)
    if info is None or not alive(info.pid):
        return None
    with contextlib.suppress(Exception):
        if connect(info.rpc_url, timeout=2).eth.chain_id == info.chain_id:
            return info
    return None


def stop(folder: Path, timeout: float = 10.0) -> bool:
    """Stop the chain recorded in ``folder``; False if none was running. Leaves its files."""
    info = ChainInfo.read(folder)
    if info is None:
        return False
    launched = _LAUNCHED.pop(info.pid, None)
    if not alive(info.pid):
        _reap(info.pid, launched, block=False)  # it died on its own: collect the zombie
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(info.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while alive(info.pid) and time.monotonic() < deadline:
        _reap(info.pid, launched, block=False)
        time.sleep(0.05)
    if alive(info.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(info.pid, signal.SIGKILL)
    _reap(info.pid, launched, block=True)
    return True


def set_gas_balance(w3: Web3, address: str, ether: Decimal) -> None:
    """Give ``address`` exactly ``ether`` of gas coin (anvil only)."""
    w3.provider.make_request("anvil_setBalance", [Web3.to_checksum_address(address), hex(int(ether * WEI))])  # type: ignore[arg-type]


def fund(info: ChainInfo, key: str, *, gas_coin: Decimal = Decimal(DEFAULT_GAS_COIN)) -> Decimal:
    """Give the account of ``key`` gas coin and take tokens from the faucet; its token balance.

    The faucet mints 1000 to an account holding fewer than 1000; an account already holding that
    much just keeps what it has.
    """
    return fund_account(connect(info.rpc_url), info.token, info.faucet, key, gas_coin=gas_coin)


def fund_account(
    w3: Web3, token: str, faucet: str, key: str, *, gas_coin: Decimal = Decimal(DEFAULT_GAS_COIN)
) -> Decimal:
    """:func:`fund` for any anvil chain, given its token and faucet addresses (from a network's
    overrides rather than a ``chain.json``); the account's token balance afterwards."""
    account = Account.from_key(key)
    if w3.eth.get_balance(account.address) < int(gas_coin * WEI):
        set_gas_balance(w3, account.address, gas_coin)
    contract = w3.eth.contract(address=Web3.to_checksum_address(token), abi=load("TestGLM").abi)
    if contract.functions.balanceOf(account.address).call() < 1000 * WEI:
        minter = w3.eth.contract(address=Web3.to_checksum_address(faucet), abi=load("TestGLM").abi)
        try:
            _send(w3, key, dict(minter.functions.create().build_transaction({"from": account.address})))
        except ContractLogicError as exc:
            raise ChainError(f"faucet refused {account.address}: {exc}") from None
    return Decimal(contract.functions.balanceOf(account.address).call()) / WEI


def fund_address(info: ChainInfo, address: str, *, gas_coin: Decimal = Decimal(DEFAULT_GAS_COIN)) -> Decimal:
    """:func:`fund` for an account whose key is elsewhere (a daemon's keystore): anvil lets the
    faucet be called as ``address`` (``anvil_impersonateAccount``), so the tokens still come from
    the faucet, as on a testnet. Its token balance afterwards."""
    w3 = connect(info.rpc_url)
    who = Web3.to_checksum_address(address)
    if w3.eth.get_balance(who) < int(gas_coin * WEI):
        set_gas_balance(w3, who, gas_coin)
    token = w3.eth.contract(address=Web3.to_checksum_address(info.token), abi=load("TestGLM").abi)
    if token.functions.balanceOf(who).call() < 1000 * WEI:
        w3.provider.make_request("anvil_impersonateAccount", [who])  # type: ignore[arg-type]
        try:
            faucet = w3.eth.contract(address=Web3.to_checksum_address(info.faucet), abi=load("TestGLM").abi)
            tx_hash = faucet.functions.create().transact({"from": who})
            receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=60, poll_latency=0.02)
            if receipt["status"] != 1:
                raise ChainError(f"faucet refused {who}")
        finally:
            w3.provider.make_request("anvil_stopImpersonatingAccount", [who])  # type: ignore[arg-type]
    return Decimal(token.functions.balanceOf(who).call()) / WEI


def token_balance(info: ChainInfo, address: str) -> Decimal:
    w3 = connect(info.rpc_url)
    token = w3.eth.contract(address=Web3.to_checksum_address(info.token), abi=load("TestGLM").abi)
    return Decimal(token.functions.balanceOf(Web3.to_checksum_address(address)).call()) / WEI


def environment(folder: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default os.environ) plus the overrides of the chain recorded in ``folder``."""
    info = ChainInfo.read(folder)
    if info is None:
        raise ChainError(f"no chain recorded in {folder}; run `golem devnet chain up` first")
    return {**(os.environ if base is None else base), **info.env()}


@dataclass(frozen=True)
class TokenTransfer:
    """One ``Transfer`` event of the token."""

    sender: str
    receiver: str
    amount: Decimal
    """In GLM (18 decimals)."""
    tx_hash: str
    block: int


def token_transfers(
    info: ChainInfo, *, sender: str | None = None, receiver: str | None = None
) -> list[TokenTransfer]:
    """Every ``Transfer`` of the chain's token, optionally from ``sender`` and/or to ``receiver``."""
    w3 = connect(info.rpc_url)
    token = w3.eth.contract(address=Web3.to_checksum_address(info.token), abi=load("TestGLM").abi)
    filters: dict[str, str] = {}
    if sender is not None:
        filters["sender"] = Web3.to_checksum_address(sender)
    if receiver is not None:
        filters["receiver"] = Web3.to_checksum_address(receiver)
    events = token.events.Transfer().get_logs(from_block=0, argument_filters=filters or None)
    return [
        TokenTransfer(
            sender=str(e["args"]["sender"]).lower(),
            receiver=str(e["args"]["receiver"]).lower(),
            amount=Decimal(e["args"]["value"]) / WEI,
            tx_hash=e["transactionHash"].to_0x_hex(),
            block=int(e["blockNumber"]),
        )
        for e in events
    ]
