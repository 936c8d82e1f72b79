"""``golem payments``: a node's money on chain and in its books.

``status`` shows the node's gas coin and token balance on a network next to what its
``payments.db`` records (allocations, payments owed, pending and paid, documents billed, accepted
and settled); ``fund`` gets test funds; ``list`` shows every debit note, invoice and payment.

The network is the table entry with yagna's environment overrides applied
(:func:`payments.networks.network`): ``source <chain dir>/chain.env`` points ``holesky`` at a local
anvil chain, ``HOLESKY_GETH_ADDR=https://...`` at the public testnet, with the same code and the same
platform name ``erc20-holesky-tglm``.

A data dir is a requestor's (``keystore.json`` and ``keystore.password`` in it, what ``golem
requestor serve`` creates) or a provider's (``identity/keystore.json`` and ``identity/password``,
what ``golem provider run`` creates); both keep ``payments.db`` at the top. The keystore password
comes from ``--password-file``, ``$GOLEM_KEYSTORE_PASSWORD``, the daemon's stored password file, or a
prompt, in that order. Only ``fund`` unlocks the key (to sign the faucet call); ``status`` reads the
address without the password.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import click

from market.core.clock import rfc3339
from market.core.config import data_dir as default_data_root
from market.core.errors import GolemError
from market.core.identity import PASSWORD_ENV, Identity, keystore_address, load_keystore, resolve_password
from payments import report, wallet
from payments.allocation import format_amount
from payments.errors import PaymentError
from payments.networks import DEFAULT_NETWORK, NETWORKS, Network, network
from payments.store import PaymentStore

DATABASE_NAME = "payments.db"


@dataclass(frozen=True)
class NodeFiles:
    """Where one node's keystore, stored password and payment database are."""

    data_dir: Path
    role: str
    """``requestor`` or ``provider``: whose layout the data dir has (``unknown`` without a keystore)."""
    keystore: Path
    password_file: Path | None
    """The password file the daemon itself created, if that layout has one."""

    @property
    def database(self) -> Path:
        return self.data_dir / DATABASE_NAME


def node_files(data_dir: Path | None, keystore: Path | None = None) -> NodeFiles:
    """Find the keystore of the node whose data dir is ``data_dir`` (default: the requestor's)."""
    folder = data_dir or default_data_root() / "requestor"
    layouts = (
        ("requestor", folder / "keystore.json", folder / "keystore.password"),
        ("provider", folder / "identity" / "keystore.json", folder / "identity" / "password"),
    )
    if keystore is not None:
        role = next((r for r, path, _ in layouts if path == keystore), "unknown")
        return NodeFiles(folder, role, keystore, None)
    for role, path, password in layouts:
        if path.is_file():
            return NodeFiles(folder, role, path, password)
    return NodeFiles(folder, "unknown", layouts[0][1], None)


def _fail(exc: BaseException) -> click.ClickException:
    return click.ClickException(str(exc))


def _network(name: str) -> Network:
    try:
        return network(name)
    except PaymentError as exc:
        raise _fail(exc) from None


def _address(files: NodeFiles) -> str:
    try:
        return keystore_address(files.keystore)
    except GolemError as exc:
        raise click.ClickException(
            f"{exc} (a requestor's data dir holds keystore.json, a provider's identity/keystore.json; "
            "pass --data-dir or --keystore)"
        ) from None


def _unlock(files: NodeFiles, password_file: Path | None) -> Identity:
    stored = files.password_file
    if password_file is None and not os.environ.get(PASSWORD_ENV) and stored is not None and stored.is_file():
        password_file = stored
    try:
        password = resolve_password(
            password_file=password_file,
            prompt=(lambda: str(click.prompt("Keystore password", hide_input=True)))
            if sys.stdin.isatty()
            else None,
        )
        return load_keystore(files.keystore, password)
    except GolemError as exc:
        raise _fail(exc) from None


@contextmanager
def _books(files: NodeFiles) -> Iterator[PaymentStore | None]:
    """The node's payment database, or ``None`` if the daemon never created one (none is created)."""
    if not files.database.is_file():
        yield None
        return
    try:
        store = PaymentStore.open(files.database)
    except GolemError as exc:
        raise _fail(exc) from None
    try:
        yield store
    finally:
        store.close()


def _amount(value: Decimal) -> str:
    return format_amount(value)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = [indent + "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += [indent + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return lines


data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The node's data dir, a requestor's or a provider's [default: $GOLEM_DATA_DIR/requestor].",
)
keystore_option = click.option(
    "--keystore",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The node's keystore, if not where its daemon keeps it in the data dir.",
)
network_option = click.option(
    "--network",
    "network_name",
    type=click.Choice(list(NETWORKS), case_sensitive=False),
    default=DEFAULT_NETWORK,
    show_default=True,
    help="Network to read balances on; its RPC and addresses come from the table and <NET>_* overrides.",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


@click.group()
def payments() -> None:
    """A node's payments: balances, test funds, documents and transfers.

    The network is configured by yagna's environment variables (HOLESKY_GETH_ADDR,
    HOLESKY_TGLM_CONTRACT_ADDRESS, ...): source a devnet chain's chain.env for the local chain, or
    set the RPC URL of a public testnet.
    """


# --- status -----------------------------------------------------------------------------------------


@payments.command()
@data_dir_option
@keystore_option
@network_option
@json_option
def status(data_dir: Path | None, keystore: Path | None, network_name: str, as_json: bool) -> None:
    """Balances on the network and what the node's books say it owes, is owed and was paid."""
    files = node_files(data_dir, keystore)
    address = _address(files)
    net = _network(network_name)
    allocations: list[report.AllocationLine] = []
    payment_totals: list[report.PaymentTotals] = []
    document_totals: list[report.DocumentTotals] = []
    with _books(files) as store:
        if store is not None:
            allocations = report.allocations(store, datetime.now(UTC))
            roles = report.roles(store) or [r for r in (files.role,) if r in report.ROLES]
            payment_totals = [t for role in roles for t in report.payment_totals(store, role)]
            document_totals = [report.document_totals(store, role) for role in roles]
    try:
        w3 = wallet.connect(net)
        balances = wallet.balances(w3, net, address)
    except PaymentError as exc:
        raise _fail(exc) from None
    reserved = report.active_remaining(allocations, net.platform)
    body = {
        "node": address,
        "role": files.role,
        "dataDir": str(files.data_dir),
        "database": str(files.database) if files.database.is_file() else None,
        "network": _network_json(net, str(w3.provider.endpoint_uri)),  # type: ignore[attr-defined]
        "balances": {
            "gasCoin": _amount(balances.gas_coin),
            "token": _amount(balances.token),
            "reserved": _amount(reserved),
            "free": _amount(max(balances.token - reserved, Decimal(0))),
        },
        "allocations": [_allocation_json(a) for a in allocations],
        "payments": [_payment_totals_json(t) for t in payment_totals],
        "documents": [_document_totals_json(t) for t in document_totals],
    }
    if as_json:
        click.echo(json.dumps(body, indent=2))
        return
    click.echo("\n".join(_status_lines(body, net)))


def _network_json(net: Network, rpc_url: str) -> dict[str, Any]:
    return {
        "name": net.name,
        "platform": net.platform,
        "chainId": net.chain_id,
        "rpcUrl": rpc_url,
        "token": net.token_address,
        "tokenSymbol": net.token_symbol,
        "gasCoin": net.gas_coin,
        "faucet": net.faucet_address,
        "multiTransfer": net.multi_transfer_address,
        "testnet": net.testnet,
    }


def _allocation_json(a: report.AllocationLine) -> dict[str, Any]:
    return {
        "allocationId": a.allocation_id,
        "platform": a.platform,
        "address": a.address,
        "totalAmount": _amount(a.total),
        "spentAmount": _amount(a.spent),
        "remainingAmount": _amount(a.remaining),
        "state": a.state,
        "released": a.state == "Released",
        "timeout": None if a.timeout is None else rfc3339(a.timeout),
    }


def _payment_totals_json(t: report.PaymentTotals) -> dict[str, Any]:
    return {
        "role": t.role,
        "platform": t.platform,
        "owed": _amount(t.owed),
        "pending": _amount(t.pending),
        "paid": _amount(t.paid),
        "failed": _amount(t.failed),
        "count": t.count,
    }


def _document_totals_json(t: report.DocumentTotals) -> dict[str, Any]:
    return {
        "role": t.role,
        "billed": _amount(t.billed),
        "accepted": _amount(t.accepted),
        "settled": _amount(t.settled),
        "counts": t.counts,
    }


def _status_lines(body: dict[str, Any], net: Network) -> list[str]:
    n = body["network"]
    b = body["balances"]
    lines = [
        f"node         {body['node']} ({body['role']}, {body['dataDir']})",
        f"network      {net.name}: {net.platform}, chain {net.chain_id}, {n['rpcUrl']}",
        f"gas coin     {b['gasCoin']} {net.gas_coin}",
        f"token        {b['token']} {net.token_symbol} ({net.token_address}); "
        f"{b['reserved']} reserved by allocations, {b['free']} free",
    ]
    if body["database"] is None:
        lines.append(f"books        no {DATABASE_NAME} yet (the daemon creates it on first run)")
        return lines
    allocations = body["allocations"]
    lines.append(f"allocations  {len(allocations) or 'none'}")
    if allocations:
        rows = [
            [
                a["allocationId"],
                a["platform"],
                a["totalAmount"],
                a["spentAmount"],
                a["remainingAmount"],
                a["state"],
            ]
            for a in allocations
        ]
        lines += _table(["ID", "PLATFORM", "TOTAL", "SPENT", "REMAINING", "STATE"], rows)
    for t in body["payments"]:
        paid = "received" if t["role"] == "provider" else "paid"
        lines.append(
            f"payments     {t['role']} on {t['platform']}: owed {t['owed']}, pending {t['pending']}, "
            f"{paid} {t['paid']}, failed {t['failed']} ({t['count']} payments)"
        )
    for d in body["documents"]:
        counts = ", ".join(
            f"{kind} {status} {n}"
            for kind, by_status in sorted(d["counts"].items())
            for status, n in sorted(by_status.items())
        )
        lines.append(
            f"documents    {d['role']}: billed {d['billed']}, accepted {d['accepted']}, "
            f"settled {d['settled']} ({counts or 'none'})"
        )
    return lines


# --- fund -------------------------------------------------------------------------------------------


@payments.command()
@data_dir_option
@keystore_option
@network_option
@click.option(
    "--password-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help=f"Keystore password file [default: ${PASSWORD_ENV}, else the daemon's stored password].",
)
def fund(data_dir: Path | None, keystore: Path | None, network_name: str, password_file: Path | None) -> None:
    """Get test tokens (and, on a local chain, gas coin) for the node's account.

    On a local anvil chain: gas coin is set directly and the token's faucet mints 1000. On a public
    testnet: the network's faucet contract mints 1000 test GLM, paid for with the account's own gas
    coin, which has to come from a public faucet first. Mainnets are never funded automatically.
    """
    files = node_files(data_dir, keystore)
    net = _network(network_name)
    try:
        wallet.check_fundable(net)
    except PaymentError as exc:
        raise _fail(exc) from None
    identity = _unlock(files, password_file)
    try:
        result = wallet.fund(net, identity.private_key_hex())
    except PaymentError as exc:
        raise _fail(exc) from None
    after = result.after
    holds = f"{_amount(after.gas_coin)} {net.gas_coin}, {_amount(after.token)} {net.token_symbol}"
    if result.method == "devnet":
        click.echo(f"funded {after.address} on the local {net.name} chain: now {holds}")
    elif result.method == "faucet":
        minted = _amount(after.token - result.before.token)
        click.echo(
            f"minted {minted} {net.token_symbol} for {after.address} on {net.name} "
            f"(faucet {net.faucet_address}, tx {result.tx_hash}): now {holds}"
        )
    else:
        click.echo(
            f"{after.address} already holds {_amount(after.token)} {net.token_symbol} on {net.name}; the "
            f"faucet mints only to accounts holding fewer than {wallet.FAUCET_LIMIT}: now {holds}"
        )


# --- list -------------------------------------------------------------------------------------------


@payments.command("list")
@data_dir_option
@json_option
def list_(data_dir: Path | None, as_json: bool) -> None:
    """Every debit note, invoice and payment in the node's books, with states and transaction hashes."""
    files = node_files(data_dir)
    documents: list[report.DocumentLine] = []
    payment_lines: list[report.PaymentLine] = []
    with _books(files) as store:
        if store is not None:
            documents = report.documents(store)
            payment_lines = report.payments(store)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "documents": [_document_json(d) for d in documents],
                    "payments": [_payment_json(p) for p in payment_lines],
                },
                indent=2,
            )
        )
        return
    if not files.database.is_file():
        click.echo(f"no {DATABASE_NAME} in {files.data_dir} (the daemon creates it on first run)")
        return
    click.echo(f"documents ({len(documents) or 'none'})")
    if documents:
        rows = [
            [d.role, d.kind, d.document_id, d.agreement_id, _amount(d.amount), d.status] for d in documents
        ]
        click.echo("\n".join(_table(["ROLE", "KIND", "ID", "AGREEMENT", "AMOUNT", "STATUS"], rows)))
    click.echo(f"payments ({len(payment_lines) or 'none'})")
    if payment_lines:
        rows = [
            [p.role, p.payment_id, _amount(p.amount), p.payee_addr, p.state, p.tx_hash or p.details or "-"]
            for p in payment_lines
        ]
        click.echo("\n".join(_table(["ROLE", "ID", "AMOUNT", "PAYEE", "STATE", "TX"], rows)))


def _document_json(d: report.DocumentLine) -> dict[str, Any]:
    return {
        "role": d.role,
        "kind": d.kind,
        "id": d.document_id,
        "agreementId": d.agreement_id,
        "activityId": d.activity_id,
        "amount": _amount(d.amount),
        "status": d.status,
        "platform": d.platform,
    }


def _payment_json(p: report.PaymentLine) -> dict[str, Any]:
    return {
        "role": p.role,
        "paymentId": p.payment_id,
        "amount": _amount(p.amount),
        "payerAddr": p.payer_addr,
        "payeeAddr": p.payee_addr,
        "platform": p.platform,
        "state": p.state,
        "txHash": p.tx_hash,
        "details": p.details,
        "documentIds": list(p.document_ids),
    }
