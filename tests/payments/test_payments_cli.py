"""``golem payments status|fund|list`` against a real anvil chain and real ``payments.db`` files.

The books are written by the payment services themselves, the way the two daemons write them: a
requestor funded from the faucet makes an allocation, accepts debit notes and invoices, and its
payments go out as real token transfers on the chain; the provider records acceptances and verifies
the payments against the chain's receipts. The CLI is then pointed at the chain by the variables
``chain.env`` holds, the configuration a user would source.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from web3 import Web3

from market.core.identity import LIGHT_KDF_WORK, Identity, create_keystore
from payments import devchain
from payments.cli import payments
from payments.contracts import load
from payments.devchain import ChainInfo
from payments.documents import DocumentKind
from payments.driver import ConfirmationListener, DriverStatus, PaymentState, ScheduledPayment
from payments.errors import DriverError, PaymentRejectedError
from payments.models import Acceptance, NewAllocation, Payment
from payments.service import AgreementTerms, ProviderPayments, RequestorPayments
from payments.store import PaymentStore
from tests.payments.chains import WEI, local_chain, send

PLATFORM = "erc20-holesky-tglm"
PASSWORD = "requestor secret"


class ChainPayer:
    """A payment driver that pays with a plain token ``transfer`` on the test chain, at once.

    It stands in for the ERC-20 driver so that the books hold real transaction hashes; ``mode``
    ``hold`` leaves an order scheduled (pending) and ``refuse`` leaves it owed, the two states a
    driver that pays at once never shows.
    """

    name = "chain-payer"
    platforms = frozenset({PLATFORM})

    def __init__(self, chain: ChainInfo, key: str) -> None:
        self.w3 = devchain.connect(chain.rpc_url)
        self.token = self.w3.eth.contract(
            address=Web3.to_checksum_address(chain.token), abi=load("TestGLM").abi
        )
        self.key = key
        self.mode = "pay"

    async def balance(self, address: str, platform: str) -> Decimal:
        return Decimal(self.token.functions.balanceOf(Web3.to_checksum_address(address)).call()) / WEI

    async def start(self) -> None:
        """Nothing runs in the background."""

    async def close(self) -> None:
        """Nothing runs in the background."""

    def add_listener(self, listener: ConfirmationListener) -> None:
        """Pays while scheduling: nothing to confirm later."""

    async def order_state(self, order_id: str) -> ScheduledPayment | None:
        return None

    async def schedule_payment(
        self,
        *,
        payer: str,
        payee: str,
        amount: Decimal,
        platform: str,
        document_ids: Sequence[str],
        order_id: str,
        due: datetime | None = None,
    ) -> ScheduledPayment:
        if self.mode == "refuse":
            raise DriverError("no gas (test)")
        if self.mode == "hold":
            return ScheduledPayment(order_id, PaymentState.SCHEDULED, "")
        call = self.token.functions.transfer(Web3.to_checksum_address(payee), int(amount * WEI))
        receipt = send(self.w3, self.key, call)
        assert receipt["status"] == 1
        return ScheduledPayment(order_id, PaymentState.CONFIRMED, receipt["transactionHash"].to_0x_hex())

    async def verify_payment(
        self, *, details: str, payer: str, payee: str, amount: Decimal, platform: str
    ) -> None:
        receipt = self.w3.eth.get_transaction_receipt(details)  # type: ignore[arg-type]
        moved = sum(
            e.args.value
            for e in self.token.events.Transfer().process_receipt(receipt)
            if e.args.sender.lower() == payer.lower() and e.args.receiver.lower() == payee.lower()
        )
        if receipt["status"] != 1 or moved < amount * WEI:
            raise PaymentRejectedError(f"{details} does not pay {amount}")

    def status(self) -> DriverStatus:
        return DriverStatus(self.name, (PLATFORM,), False, "test chain payer")


@dataclass
class Node:
    data_dir: Path
    identity: Identity

    @property
    def address(self) -> str:
        return self.identity.node_id


def requestor_node(folder: Path, password: str = PASSWORD) -> Node:
    """A data dir laid out as ``golem requestor serve`` leaves it (stored password beside the keystore)."""
    identity = create_keystore(folder / "keystore.json", password, kdf_work=LIGHT_KDF_WORK)
    (folder / "keystore.password").write_text(password + "\n")
    return Node(folder, identity)


def provider_node(folder: Path) -> Node:
    """A data dir laid out as ``golem provider run`` leaves it."""
    identity = create_keystore(
        folder / "identity" / "keystore.json", "provider secret", kdf_work=LIGHT_KDF_WORK
    )
    (folder / "identity" / "password").write_text("provider secret\n")
    return Node(folder, identity)


def run(args: Sequence[str | Path], env: Mapping[str, str | None] | None = None) -> Result:
    """``golem payments ARGS`` with ``env`` on top of the process environment (None unsets)."""
    return CliRunner().invoke(
        payments, [str(a) for a in args], env={"GOLEM_KEYSTORE_PASSWORD": None, **(env or {})}
    )


def ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output
    return result


# --- the books ---------------------------------------------------------------------------------------


@dataclass
class Books:
    chain: ChainInfo
    requestor: Node
    provider: Node
    allocation_id: str
    tx_hashes: list[str]


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChainInfo]:
    with local_chain(tmp_path_factory.mktemp("chain")) as info:
        yield info


@pytest.fixture(scope="module")
def books(chain: ChainInfo, tmp_path_factory: pytest.TempPathFactory) -> Books:
    requestor = requestor_node(tmp_path_factory.mktemp("requestor"))
    provider = provider_node(tmp_path_factory.mktemp("provider"))
    devchain.fund(chain, requestor.identity.private_key_hex())
    return asyncio.run(_write_books(chain, requestor, provider))


async def _write_books(chain: ChainInfo, requestor: Node, provider: Node) -> Books:
    r_store = PaymentStore.open(requestor.data_dir / "payments.db")
    p_store = PaymentStore.open(provider.data_dir / "payments.db")
    payer = ChainPayer(chain, requestor.identity.private_key_hex())
    r_side = RequestorPayments(r_store, [payer], identity=requestor.address, default_platform=PLATFORM)
    p_side = ProviderPayments(p_store, identity=provider.address, drivers=[payer])
    now = datetime.now(UTC)
    allocation = await r_side.create_allocation(
        NewAllocation.model_validate(
            {"address": requestor.address, "paymentPlatform": PLATFORM, "totalAmount": "100",
             "timestamp": now.isoformat(), "timeout": (now + timedelta(days=1)).isoformat(),
             "makeDeposit": False}
        )
    )  # fmt: skip

    def terms(n: int) -> AgreementTerms:
        return AgreementTerms(f"agreement-{n}", requestor.address, provider.address, requestor.address,
                              provider.address, PLATFORM)  # fmt: skip

    async def bill_and_accept(n: int, amount: str, *, invoice: bool) -> None:
        if invoice:
            doc: Any = p_side.issue_invoice(
                terms(n), [f"activity-{n}"], Decimal(amount), payment_due_date=now
            )
            r_side.receive_invoice(doc)
            p_side.mark_sent(DocumentKind.INVOICE, doc.invoice_id)
            await r_side.accept_invoice(doc.invoice_id, _acceptance(amount, allocation.allocation_id))
        else:
            doc = p_side.issue_debit_note(terms(n), f"activity-{n}", Decimal(amount), payment_due_date=now)
            r_side.receive_debit_note(doc)
            p_side.mark_sent(DocumentKind.DEBIT_NOTE, doc.debit_note_id)
            await r_side.accept_debit_note(doc.debit_note_id, _acceptance(amount, allocation.allocation_id))

    await bill_and_accept(1, "2", invoice=False)  # paid on chain: 2
    await bill_and_accept(1, "5", invoice=True)  # paid on chain: the 3 the note did not cover
    payer.mode = "hold"
    await bill_and_accept(2, "1.5", invoice=False)  # pending
    payer.mode = "refuse"
    await bill_and_accept(3, "0.25", invoice=True)  # owed

    tx_hashes = []
    for seq, kind, document_id, body in r_side.undelivered():  # what the daemons' relay carries
        if kind in ("DebitNoteAccepted", "InvoiceAccepted"):
            doc_kind = DocumentKind.DEBIT_NOTE if kind == "DebitNoteAccepted" else DocumentKind.INVOICE
            p_side.record_acceptance(doc_kind, document_id, Acceptance.model_validate(body))
        elif kind == "Payment":
            payment = Payment.model_validate(body)
            await p_side.record_payment(payment)
            tx_hashes.append(payment.details)
        r_side.mark_delivered(seq)
    r_store.close()
    p_store.close()
    return Books(chain, requestor, provider, allocation.allocation_id, tx_hashes)


def _acceptance(amount: str, allocation_id: str) -> Acceptance:
    return Acceptance(total_amount_accepted=Decimal(amount), allocation_id=allocation_id)


# --- status -----------------------------------------------------------------------------------------


def test_status_json_shows_chain_balances_and_the_requestors_books(books: Books) -> None:
    result = ok(run(["status", "--data-dir", books.requestor.data_dir, "--json"], books.chain.env()))
    status = json.loads(result.output)
    assert status["node"] == books.requestor.address
    assert status["role"] == "requestor"
    # Platform and chain from the table, endpoint and token from the environment (chain.env).
    assert status["network"]["platform"] == PLATFORM
    assert status["network"]["chainId"] == 17000
    assert status["network"]["rpcUrl"] == books.chain.rpc_url
    assert status["network"]["token"] == books.chain.token
    balances = status["balances"]
    assert balances["token"] == "995"  # 1000 from the faucet, 5 paid on chain
    assert Decimal(balances["gasCoin"]) > 99
    assert (balances["reserved"], balances["free"]) == ("93.25", "901.75")
    [allocation] = status["allocations"]
    assert allocation["allocationId"] == books.allocation_id
    assert (allocation["totalAmount"], allocation["spentAmount"], allocation["remainingAmount"]) == (
        "100",
        "6.75",
        "93.25",
    )
    assert (allocation["state"], allocation["released"]) == ("Active", False)
    assert status["payments"] == [
        {"role": "requestor", "platform": PLATFORM, "owed": "0.25", "pending": "1.5", "paid": "5",
         "failed": "0", "count": 4}
    ]  # fmt: skip
    [documents] = status["documents"]
    assert (documents["billed"], documents["accepted"], documents["settled"]) == ("6.75", "6.75", "5")


def test_status_of_a_provider_data_dir(books: Books) -> None:
    status = json.loads(
        ok(run(["status", "--data-dir", books.provider.data_dir, "--json"], books.chain.env())).output
    )
    assert (status["node"], status["role"]) == (books.provider.address, "provider")
    assert status["balances"]["token"] == "5"
    assert status["allocations"] == []
    [received] = status["payments"]
    assert (received["role"], received["paid"], received["count"]) == ("provider", "5", 2)
    [documents] = status["documents"]
    assert (documents["billed"], documents["accepted"], documents["settled"]) == ("6.75", "6.75", "5")
    assert documents["counts"] == {
        "DebitNote": {"ACCEPTED": 1, "SETTLED": 1},
        "Invoice": {"ACCEPTED": 1, "SETTLED": 1},
    }


def test_status_human_output(books: Books) -> None:
    output = ok(run(["status", "--data-dir", books.requestor.data_dir], books.chain.env())).output
    assert books.requestor.address in output
    assert f"holesky: {PLATFORM}, chain 17000, {books.chain.rpc_url}" in output
    assert "995 tGLM" in output and "93.25 reserved by allocations, 901.75 free" in output
    assert books.allocation_id in output
    assert f"requestor on {PLATFORM}: owed 0.25, pending 1.5, paid 5, failed 0 (4 payments)" in output
    assert "billed 6.75, accepted 6.75, settled 5" in output


# --- list -------------------------------------------------------------------------------------------


def test_list_shows_documents_and_payments_with_their_transactions(books: Books) -> None:
    listing = json.loads(ok(run(["list", "--data-dir", books.requestor.data_dir, "--json"])).output)
    by_state = sorted((p["state"], p["amount"], p["txHash"]) for p in listing["payments"])
    confirmed = [p for p in listing["payments"] if p["state"] == "Confirmed"]
    assert sorted(p["txHash"] for p in confirmed) == sorted(books.tx_hashes)
    assert [(s, a) for s, a, _ in by_state] == [("Confirmed", "2"), ("Confirmed", "3"), ("Ordered", "0.25"),
                                                 ("Scheduled", "1.5")]  # fmt: skip
    assert [t for s, _, t in by_state if s != "Confirmed"] == [None, None]
    assert {p["payeeAddr"] for p in listing["payments"]} == {books.provider.address}
    # Each hash is a real transfer on the chain, from the requestor to the provider, of that amount.
    w3 = devchain.connect(books.chain.rpc_url)
    token = w3.eth.contract(address=Web3.to_checksum_address(books.chain.token), abi=load("TestGLM").abi)
    for p in confirmed:
        receipt = w3.eth.get_transaction_receipt(p["txHash"])
        [transfer] = token.events.Transfer().process_receipt(receipt)
        assert transfer.args.sender.lower() == books.requestor.address
        assert transfer.args.receiver.lower() == books.provider.address
        assert Decimal(transfer.args.value) / WEI == Decimal(p["amount"])
    kinds = sorted((d["kind"], d["agreementId"], d["amount"], d["status"]) for d in listing["documents"])
    assert kinds == [
        ("DebitNote", "agreement-1", "2", "SETTLED"),
        ("DebitNote", "agreement-2", "1.5", "ACCEPTED"),
        ("Invoice", "agreement-1", "5", "SETTLED"),
        ("Invoice", "agreement-3", "0.25", "ACCEPTED"),
    ]

    text = ok(run(["list", "--data-dir", books.requestor.data_dir])).output
    assert all(tx in text for tx in books.tx_hashes)
    assert "documents (4)" in text and "payments (4)" in text

    provider_text = ok(run(["list", "--data-dir", books.provider.data_dir])).output
    assert all(tx in provider_text for tx in books.tx_hashes)


def test_list_without_books(tmp_path: Path) -> None:
    assert "no payments.db in" in ok(run(["list", "--data-dir", tmp_path])).output
    assert json.loads(ok(run(["list", "--data-dir", tmp_path, "--json"])).output) == {
        "documents": [],
        "payments": [],
    }
    assert not (tmp_path / "payments.db").exists()  # reading creates nothing


# --- fund -------------------------------------------------------------------------------------------


def test_fund_on_the_devnet_with_the_requestors_stored_password(chain: ChainInfo, tmp_path: Path) -> None:
    node = requestor_node(tmp_path)
    result = ok(run(["fund", "--data-dir", tmp_path], chain.env()))
    assert f"funded {Web3.to_checksum_address(node.address)} on the local holesky chain" in result.output
    assert "1000 tGLM" in result.output
    assert devchain.token_balance(chain, node.address) == Decimal(1000)
    ok(run(["fund", "--data-dir", tmp_path], chain.env()))  # again: tops up gas, no second mint
    assert devchain.token_balance(chain, node.address) == Decimal(1000)
    status = json.loads(ok(run(["status", "--data-dir", tmp_path, "--json"], chain.env())).output)
    assert status["balances"]["token"] == "1000"
    assert status["database"] is None and status["allocations"] == []


def test_fund_a_provider_with_the_password_from_the_environment(chain: ChainInfo, tmp_path: Path) -> None:
    node = provider_node(tmp_path)
    (tmp_path / "identity" / "password").unlink()
    refused = run(["fund", "--data-dir", tmp_path], chain.env())
    assert refused.exit_code == 1 and "no keystore password" in refused.output
    ok(run(["fund", "--data-dir", tmp_path], {**chain.env(), "GOLEM_KEYSTORE_PASSWORD": "provider secret"}))
    assert devchain.token_balance(chain, node.address) == Decimal(1000)

    wrong = run(["fund", "--data-dir", tmp_path], {**chain.env(), "GOLEM_KEYSTORE_PASSWORD": "wrong"})
    assert wrong.exit_code == 1 and "wrong password" in wrong.output


@pytest.mark.parametrize("name", ["mainnet", "polygon"])
def test_fund_refuses_mainnets(tmp_path: Path, name: str) -> None:
    node = requestor_node(tmp_path)
    result = run(["fund", "--data-dir", tmp_path, "--network", name])
    assert result.exit_code == 1
    assert f"network {name} does not support automatic funding" in result.output
    assert "Traceback" not in result.output
    assert node.address  # the key was never needed


# --- errors -----------------------------------------------------------------------------------------


def test_an_unreachable_rpc_is_a_clear_error(tmp_path: Path) -> None:
    requestor_node(tmp_path)
    closed = f"http://127.0.0.1:{devchain.free_port()}"
    for command in ("status", "fund"):
        result = run([command, "--data-dir", tmp_path], {"HOLESKY_GETH_ADDR": closed})
        assert result.exit_code == 1, result.output
        assert f"cannot reach the holesky network ({closed}: [Errno 111] Connection refused)" in result.output
        assert "HOLESKY_GETH_ADDR" in result.output
        assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)


def test_a_chain_of_another_network_is_refused(books: Books) -> None:
    result = run(["status", "--data-dir", books.requestor.data_dir, "--network", "hoodi"],
                 {"HOODI_GETH_ADDR": books.chain.rpc_url})  # fmt: skip
    assert result.exit_code == 1
    assert "serves chain 17000, not hoodi (560048)" in result.output


def test_a_malformed_override_names_the_variable(tmp_path: Path) -> None:
    requestor_node(tmp_path)
    result = run(["status", "--data-dir", tmp_path], {"HOLESKY_TGLM_CONTRACT_ADDRESS": "0x1234"})
    assert result.exit_code == 1
    assert "HOLESKY_TGLM_CONTRACT_ADDRESS='0x1234' is not a 20-byte hex address" in result.output


def test_a_data_dir_without_a_keystore_is_a_clear_error(tmp_path: Path) -> None:
    result = run(["status", "--data-dir", tmp_path])
    assert result.exit_code == 1
    assert "no keystore at" in result.output and "identity/keystore.json" in result.output


def test_the_commands_are_registered_with_golem() -> None:
    commands = {e.name: e.value for e in entry_points(group="golem.commands")}
    assert commands["payments"] == "payments.cli:payments"
    assert set(payments.commands) == {"status", "fund", "list"}
