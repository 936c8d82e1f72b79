"""Our Vyper contracts: the committed artifacts are what the sources compile to, and on a real anvil
chain the token behaves as an ERC-20 with Golem's faucet rule and the batch contract pays packed
entries with one ``Transfer`` from the payer per payee."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractLogicError

from payments import devchain
from payments.contracts import CONTRACTS, artifact_path, compile_source, load, pack_payment, source_path
from payments.devchain import ChainInfo
from tests.payments.chains import WEI, address_of, local_chain, new_key, send

ZERO = "0x0000000000000000000000000000000000000000"
MAX_UINT = 2**256 - 1


@pytest.mark.parametrize("name", CONTRACTS)
def test_committed_artifact_is_what_the_source_compiles_to(name: str) -> None:
    rebuilt = compile_source(name).to_json()
    assert rebuilt == artifact_path(name).read_text(), f"run `python -m payments.contracts` to rebuild {name}"
    artifact = load(name)
    assert artifact.compiler == "vyper 0.4.3"
    assert artifact.bytecode.startswith("0x") and len(artifact.bytecode) > 100
    assert source_path(name).is_file()


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChainInfo]:
    with local_chain(tmp_path_factory.mktemp("chain")) as info:
        yield info


@pytest.fixture(scope="module")
def w3(chain: ChainInfo) -> Web3:
    return devchain.connect(chain.rpc_url)


@pytest.fixture(scope="module")
def token(w3: Web3, chain: ChainInfo) -> Contract:
    return w3.eth.contract(address=Web3.to_checksum_address(chain.token), abi=load("TestGLM").abi)


@pytest.fixture(scope="module")
def multi(w3: Web3, chain: ChainInfo) -> Contract:
    return w3.eth.contract(
        address=Web3.to_checksum_address(chain.multi_transfer), abi=load("MultiTransfer").abi
    )


def _holder(w3: Web3, token: Contract) -> str:
    """A fresh account with gas coin and 1000 tokens from the faucet."""
    key = new_key(w3)
    assert send(w3, key, token.functions.create())["status"] == 1
    return key


def _transfers(token: Contract, receipt: Any) -> list[tuple[str, str, int]]:
    # process_receipt decodes only logs emitted by the token's own address.
    return [
        (e.args.sender, e.args.receiver, e.args.value)
        for e in token.events.Transfer().process_receipt(receipt)
    ]


def test_metadata(token: Contract) -> None:
    assert token.functions.name().call() == "Test Golem Network Token"
    assert token.functions.symbol().call() == "tGLM"
    assert token.functions.decimals().call() == 18


def test_faucet_mints_1000_to_an_account_below_1000_and_refuses_above(w3: Web3, token: Contract) -> None:
    key = new_key(w3)
    who = address_of(key)
    supply = token.functions.totalSupply().call()
    receipt = send(w3, key, token.functions.create())
    assert receipt["status"] == 1
    assert _transfers(token, receipt) == [(ZERO, who, 1000 * WEI)]
    assert token.functions.balanceOf(who).call() == 1000 * WEI
    assert token.functions.totalSupply().call() == supply + 1000 * WEI

    with pytest.raises(ContractLogicError, match="Cannot acquire more funds"):
        token.functions.create().call({"from": who})
    refused = send(w3, key, token.functions.create(), gas=200_000)
    assert refused["status"] == 0
    assert token.functions.balanceOf(who).call() == 1000 * WEI

    # Below 1000 again (1 wei short), the faucet mints again, as Golem's does.
    other = address_of(new_key(w3, Decimal(0)))
    send(w3, key, token.functions.transfer(other, 1))
    assert send(w3, key, token.functions.create())["status"] == 1
    assert token.functions.balanceOf(who).call() == 2000 * WEI - 1


def test_transfer_approve_and_transfer_from_emit_their_events(w3: Web3, token: Contract) -> None:
    owner_key = _holder(w3, token)
    owner = address_of(owner_key)
    spender_key = new_key(w3)
    spender = address_of(spender_key)
    receiver = address_of(new_key(w3, Decimal(0)))

    receipt = send(w3, owner_key, token.functions.transfer(receiver, 5 * WEI))
    assert _transfers(token, receipt) == [(owner, receiver, 5 * WEI)]

    receipt = send(w3, owner_key, token.functions.approve(spender, 7 * WEI))
    approvals = token.events.Approval().process_receipt(receipt)
    assert [(e.args.owner, e.args.spender, e.args.value) for e in approvals] == [(owner, spender, 7 * WEI)]
    assert token.functions.allowance(owner, spender).call() == 7 * WEI

    receipt = send(w3, spender_key, token.functions.transferFrom(owner, receiver, 3 * WEI))
    assert _transfers(token, receipt) == [(owner, receiver, 3 * WEI)]
    assert token.functions.allowance(owner, spender).call() == 4 * WEI  # a finite allowance is spent down
    assert token.functions.balanceOf(receiver).call() == 8 * WEI
    assert token.functions.balanceOf(owner).call() == 992 * WEI

    with pytest.raises(ContractLogicError, match="exceeds allowance"):
        token.functions.transferFrom(owner, receiver, 5 * WEI).call({"from": spender})


def test_max_allowance_is_never_spent_down(w3: Web3, token: Contract) -> None:
    owner_key = _holder(w3, token)
    owner = address_of(owner_key)
    spender_key = new_key(w3)
    spender = address_of(spender_key)
    send(w3, owner_key, token.functions.approve(spender, MAX_UINT))
    for _ in range(2):
        receipt = send(w3, spender_key, token.functions.transferFrom(owner, spender, 10 * WEI))
        assert receipt["status"] == 1
    assert token.functions.allowance(owner, spender).call() == MAX_UINT
    assert token.functions.balanceOf(spender).call() == 20 * WEI


def test_insufficient_balance_and_the_zero_address_revert(w3: Web3, token: Contract) -> None:
    key = _holder(w3, token)
    who = address_of(key)
    receiver = address_of(new_key(w3, Decimal(0)))
    with pytest.raises(ContractLogicError, match="transfer amount exceeds balance"):
        token.functions.transfer(receiver, 1000 * WEI + 1).call({"from": who})
    failed = send(w3, key, token.functions.transfer(receiver, 1000 * WEI + 1), gas=100_000)
    assert failed["status"] == 0
    assert token.functions.balanceOf(receiver).call() == 0
    with pytest.raises(ContractLogicError, match="zero address"):
        token.functions.transfer(ZERO, 1).call({"from": who})


def test_batch_pays_three_payees_with_a_transfer_from_the_payer_each(
    w3: Web3, token: Contract, multi: Contract
) -> None:
    assert multi.functions.token().call() == token.address
    payer_key = _holder(w3, token)
    payer = address_of(payer_key)
    payees = [address_of(new_key(w3, Decimal(0))) for _ in range(3)]
    amounts = [1 * WEI, 25 * WEI // 10, 3 * WEI + 7]
    send(w3, payer_key, token.functions.approve(multi.address, MAX_UINT))

    entries = [pack_payment(p, a) for p, a in zip(payees, amounts, strict=True)]
    receipt = send(w3, payer_key, multi.functions.golemTransferDirectPacked(entries))
    assert receipt["status"] == 1
    assert _transfers(token, receipt) == [(payer, p, a) for p, a in zip(payees, amounts, strict=True)]
    assert [token.functions.balanceOf(p).call() for p in payees] == amounts
    assert token.functions.balanceOf(payer).call() == 1000 * WEI - sum(amounts)
    assert token.functions.allowance(payer, multi.address).call() == MAX_UINT


def test_batch_without_enough_balance_or_allowance_moves_nothing(
    w3: Web3, token: Contract, multi: Contract
) -> None:
    payer_key = _holder(w3, token)
    payer = address_of(payer_key)
    payees = [address_of(new_key(w3, Decimal(0))) for _ in range(2)]
    entries = [pack_payment(payees[0], 600 * WEI), pack_payment(payees[1], 600 * WEI)]
    with pytest.raises(ContractLogicError, match="exceeds allowance"):
        multi.functions.golemTransferDirectPacked(entries).call({"from": payer})
    send(w3, payer_key, token.functions.approve(multi.address, MAX_UINT))
    with pytest.raises(ContractLogicError, match="exceeds balance"):
        multi.functions.golemTransferDirectPacked(entries).call({"from": payer})
    failed = send(w3, payer_key, multi.functions.golemTransferDirectPacked(entries), gas=300_000)
    assert failed["status"] == 0
    assert _transfers(token, failed) == []
    assert token.functions.balanceOf(payer).call() == 1000 * WEI  # the first entry was rolled back too
    assert token.functions.balanceOf(payees[0]).call() == 0


def test_pack_payment_layout_and_limits() -> None:
    payee = "0x" + "12" * 20
    word = pack_payment(payee, 2**96 - 1)
    assert len(word) == 32
    value = int.from_bytes(word, "big")
    assert value >> 96 == int(payee, 16)
    assert value & (2**96 - 1) == 2**96 - 1
    assert pack_payment(payee, 0)[20:] == bytes(12)
    with pytest.raises(ValueError, match="96 bits"):
        pack_payment(payee, 2**96)
    with pytest.raises(ValueError, match="96 bits"):
        pack_payment(payee, -1)
    for bad in ("0x1234", "0x" + "zz" * 20, "12" * 21):
        with pytest.raises(ValueError, match="20-byte hex address"):
            pack_payment(bad, 1)
