"""Unit tests of the ERC-20 driver's pure logic: units, batching, cycle timing, fees, calldata, settings,
and the provider's receipt check. No chain, no database."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from eth_abi.abi import decode
from hypothesis import given
from hypothesis import strategies as st
from web3 import Web3

from market.core.clock import FakeClock
from payments.contracts import load
from payments.erc20.batching import (
    PACKED_AMOUNT_LIMIT,
    CycleTimer,
    Entry,
    PendingOrder,
    PlannedTx,
    TxKind,
    pack_entry,
    plan_cycle,
    sum_per_payee,
    unpack_entry,
)
from payments.erc20.calls import (
    TRANSFER_TOPIC,
    LogEntry,
    allowance_call,
    approve_call,
    balance_of_call,
    batch_call,
    transfer_call,
    transfers_in,
)
from payments.erc20.chain import Receipt, RefusalKind, classify_refusal, public_url
from payments.erc20.fees import BumpBlockedError, FeeCapError, Fees, bumped, initial_fees, replacement_fees
from payments.erc20.settings import SenderSettings
from payments.erc20.units import WEI_PER_GWEI, format_gwei, from_wei, gwei_to_wei, to_wei
from payments.erc20.verify import check_receipt
from payments.errors import InvalidInputError, PaymentRejectedError

A, B, C = ("0x" + c * 40 for c in "abc")
GWEI = WEI_PER_GWEI


def order(order_id: str, payee: str, wei: int) -> PendingOrder:
    return PendingOrder(order_id, payee, wei)


# --- units ------------------------------------------------------------------------------------------


def test_amounts_round_up_to_whole_wei() -> None:
    assert to_wei(Decimal("1.5")) == 1_500_000_000_000_000_000
    # What yapapi sends for a budget of 0.1: more than 18 decimals; the payee gets the next wei up.
    assert to_wei(Decimal("0.1000000000000000055511151231257827021181583404541015625")) == 10**17 + 6
    assert to_wei(Decimal("1E-30")) == 1
    assert from_wei(10**17 + 6) == Decimal("0.100000000000000006")
    assert from_wei(3 * 10**77) == Decimal(3 * 10**59)  # exact far beyond 28 digits
    for bad in (Decimal(0), Decimal(-1), Decimal("NaN"), Decimal(2**256)):
        with pytest.raises(ValueError):
            to_wei(bad)


def test_fee_units() -> None:
    assert gwei_to_wei(Decimal("0.000001")) == 1000
    assert gwei_to_wei(Decimal("25.011")) == 25_011_000_000
    assert gwei_to_wei(Decimal("0.0000000001")) == 0  # never rounded up past a cap
    assert format_gwei(25_500_000_000) == "25.5"
    assert format_gwei(20 * GWEI) == "20"


@given(st.decimals(min_value=Decimal("1e-18"), max_value=Decimal(10**12), places=30))
def test_to_wei_never_pays_less_than_claimed(amount: Decimal) -> None:
    wei = to_wei(amount)
    assert from_wei(wei) >= amount
    assert from_wei(wei - 1) < amount


# --- batching ---------------------------------------------------------------------------------------


def test_orders_are_summed_per_payee_case_insensitively() -> None:
    entries = sum_per_payee(
        [order("1", B, 5), order("2", A, 1), order("3", B.upper().replace("0X", "0x"), 2)]
    )
    assert entries == [Entry(A, 1, ("2",)), Entry(B, 7, ("1", "3"))]
    with pytest.raises(ValueError):
        sum_per_payee([order("x", "not an address", 1)])


def test_one_payee_is_a_transfer_several_are_batches_in_chunks() -> None:
    one = sum_per_payee([order("1", A, 5), order("2", A, 6)])
    assert plan_cycle(one, batch_available=True, max_batch=10) == [
        PlannedTx(TxKind.TRANSFER, (Entry(A, 11, ("1", "2")),))
    ]

    payees = [f"0x{i:040x}" for i in range(1, 24)]
    entries = sum_per_payee(order(str(i), p, 1) for i, p in enumerate(payees))
    plan = plan_cycle(entries, batch_available=True, max_batch=10)
    assert [(p.kind, len(p.entries)) for p in plan] == [
        (TxKind.BATCH, 10),
        (TxKind.BATCH, 10),
        (TxKind.BATCH, 3),
    ]
    # A lone payee left over after full chunks is a plain transfer.
    plan = plan_cycle(entries[:21], batch_available=True, max_batch=10)
    assert [(p.kind, len(p.entries)) for p in plan] == [
        (TxKind.BATCH, 10),
        (TxKind.BATCH, 10),
        (TxKind.TRANSFER, 1),
    ]
    assert sorted(o for p in plan for o in p.order_ids) == sorted(str(i) for i in range(21))


def test_without_a_batch_contract_every_payee_gets_a_transfer() -> None:
    entries = sum_per_payee([order("1", A, 1), order("2", B, 2), order("3", C, 3)])
    plan = plan_cycle(entries, batch_available=False, max_batch=10)
    assert [(p.kind, p.entries[0].payee, p.amount_wei) for p in plan] == [
        (TxKind.TRANSFER, A, 1),
        (TxKind.TRANSFER, B, 2),
        (TxKind.TRANSFER, C, 3),
    ]
    assert [p.kind for p in plan_cycle(entries, batch_available=True, max_batch=1)] == [TxKind.TRANSFER] * 3


def test_an_amount_too_large_to_pack_goes_alone() -> None:
    entries = sum_per_payee([order("1", A, PACKED_AMOUNT_LIMIT), order("2", B, 2), order("3", C, 3)])
    plan = plan_cycle(entries, batch_available=True, max_batch=10)
    assert [(p.kind, [e.payee for e in p.entries]) for p in plan] == [
        (TxKind.BATCH, [B, C]),
        (TxKind.TRANSFER, [A]),
    ]


def test_packed_entries_match_the_contract_layout() -> None:
    word = pack_entry(A, 0x0102)
    assert word == bytes.fromhex("aa" * 20) + bytes(10) + b"\x01\x02"
    assert unpack_entry(word) == (A, 0x0102)
    for bad in (0, PACKED_AMOUNT_LIMIT):
        with pytest.raises(ValueError):
            pack_entry(A, bad)
    data = batch_call([Entry(A, 5, ()), Entry(B, 7, ())])
    (words,) = decode(["bytes32[]"], data[4:])
    assert [unpack_entry(w) for w in words] == [(A, 5), (B, 7)]


def test_calldata_matches_what_web3_encodes_from_our_contracts_abis() -> None:
    w3 = Web3()
    multi = w3.eth.contract(abi=load("MultiTransfer").abi)
    token = w3.eth.contract(abi=load("TestGLM").abi)
    entries = [Entry(A, 5, ()), Entry(B, 7, ())]
    words = [pack_entry(e.payee, e.amount_wei) for e in entries]
    assert batch_call(entries) == bytes.fromhex(multi.encode_abi("golemTransferDirectPacked", [words])[2:])
    checksum = Web3.to_checksum_address
    assert transfer_call(B, 9) == bytes.fromhex(token.encode_abi("transfer", [checksum(B), 9])[2:])
    assert approve_call(C) == bytes.fromhex(token.encode_abi("approve", [checksum(C), 2**256 - 1])[2:])
    assert balance_of_call(A) == bytes.fromhex(token.encode_abi("balanceOf", [checksum(A)])[2:])
    assert allowance_call(A, C) == bytes.fromhex(
        token.encode_abi("allowance", [checksum(A), checksum(C)])[2:]
    )


# --- cycle timing -----------------------------------------------------------------------------------


def test_cycles_follow_the_interval_or_the_nearest_due_date() -> None:
    clock = FakeClock()
    timer = CycleTimer(interval=60, margin=30, last=clock.now())
    assert not timer.is_due(clock.now(), None)
    clock.advance(59)
    assert not timer.is_due(clock.now(), None)
    clock.advance(1)
    assert timer.is_due(clock.now(), None)
    timer.ran(clock.now())

    due = clock.now() + timedelta(seconds=45)  # a cycle 30 s before it: in 15 s, before the next regular one
    assert timer.next_at(due) == clock.now() + timedelta(seconds=15)
    clock.advance(14)
    assert not timer.is_due(clock.now(), due)
    clock.advance(1)
    assert timer.is_due(clock.now(), due)
    timer.ran(clock.now())
    # A due date later than the regular cycle changes nothing.
    assert timer.next_at(clock.now() + timedelta(hours=1)) == clock.now() + timedelta(seconds=60)


def test_a_held_cycle_waits_for_its_retry_time_even_past_due() -> None:
    clock = FakeClock()
    timer = CycleTimer(interval=60, margin=30, last=clock.now())
    overdue = clock.now() - timedelta(seconds=100)
    assert timer.is_due(clock.now(), overdue)
    timer.hold(clock.now() + timedelta(seconds=10))
    assert not timer.is_due(clock.now(), overdue)
    clock.advance(10)
    assert timer.is_due(clock.now(), overdue)
    timer.ran(clock.now())
    assert timer.hold_until is None


# --- fees -------------------------------------------------------------------------------------------


def test_initial_fees_leave_room_for_the_base_fee_to_double_within_the_cap() -> None:
    assert initial_fees(10 * GWEI, 1000, 40 * GWEI) == Fees(max_fee=20 * GWEI + 1000, priority_fee=1000)
    # The cap wins over 2 * base + tip, but base + tip still fits.
    assert initial_fees(15 * GWEI, GWEI, 20 * GWEI) == Fees(max_fee=20 * GWEI, priority_fee=GWEI)
    # The cap leaves less than the tip above the base fee: offer the cap, tip capped too.
    assert initial_fees(20 * GWEI, GWEI, 20 * GWEI) == Fees(max_fee=20 * GWEI, priority_fee=GWEI)
    with pytest.raises(FeeCapError, match="base fee 25 gwei over the cap 20 gwei"):
        initial_fees(25 * GWEI, 1000, 20 * GWEI)


def test_replacement_bumps_both_fees_by_ten_percent() -> None:
    old = Fees(max_fee=10 * GWEI, priority_fee=1000)
    new = replacement_fees(old, base_fee=GWEI, priority_fee=1000, cap=40 * GWEI)
    assert new.max_fee >= old.max_fee * 11 // 10 and new.priority_fee >= 1100
    assert new == Fees(max_fee=11 * GWEI, priority_fee=1100)
    # The base fee rose meanwhile: the replacement offers what a new transaction would.
    risen = replacement_fees(old, base_fee=8 * GWEI, priority_fee=1000, cap=40 * GWEI)
    assert risen == Fees(max_fee=16 * GWEI + 1100, priority_fee=1100)
    # Near the cap: the cap itself if it is still a 10 % bump...
    assert replacement_fees(old, base_fee=9 * GWEI, priority_fee=1000, cap=12 * GWEI).max_fee == 12 * GWEI
    # ...and a clear refusal if it is not.
    with pytest.raises(BumpBlockedError, match=r"exceed the cap of 10\.5 gwei"):
        replacement_fees(old, base_fee=GWEI, priority_fee=1000, cap=10_500_000_000)
    with pytest.raises(FeeCapError):
        replacement_fees(old, base_fee=50 * GWEI, priority_fee=1000, cap=40 * GWEI)
    assert bumped(0) == 1 and bumped(1) == 2 and bumped(10) == 11 and bumped(11) == 13


@given(st.integers(1, 10**12), st.integers(0, 10**11), st.integers(0, 10**12), st.integers(0, 10**11))
def test_replacements_are_always_a_ten_percent_bump_within_the_cap(
    max_fee: int, tip: int, base: int, configured_tip: int
) -> None:
    old = Fees(max_fee=max(max_fee, tip), priority_fee=tip)
    cap = 2 * old.max_fee
    try:
        new = replacement_fees(old, base, configured_tip, cap)
    except (BumpBlockedError, FeeCapError):
        return
    assert new.max_fee * 10 >= old.max_fee * 11 and new.priority_fee * 10 >= old.priority_fee * 11
    assert new.priority_fee <= new.max_fee <= cap


# --- node errors, logs and the provider's check -----------------------------------------------------


def test_node_refusals_are_classified() -> None:
    assert classify_refusal("already known") is RefusalKind.KNOWN
    assert classify_refusal("transaction already imported") is RefusalKind.KNOWN  # anvil
    assert classify_refusal("nonce too low") is RefusalKind.NONCE_USED
    assert classify_refusal("replacement transaction underpriced") is RefusalKind.UNDERPRICED
    assert classify_refusal("max fee per gas less than block base fee") is RefusalKind.UNDERPRICED
    assert classify_refusal("Insufficient funds for gas * price + value") is RefusalKind.FUNDS
    assert classify_refusal("exceeds block gas limit") is RefusalKind.OTHER


def test_rpc_urls_are_shown_without_what_may_be_a_key() -> None:
    assert public_url("http://127.0.0.1:8545") == "http://127.0.0.1:8545"
    assert public_url("https://mainnet.infura.io/v3/0123abcd") == "https://mainnet.infura.io/…"
    assert public_url("https://user:secret@rpc.example/") == "https://rpc.example/…"
    assert public_url("https://rpc.example?apikey=1") == "https://rpc.example/…"
    assert public_url("not a url") == "<rpc>"


TOKEN = "0x" + "70" * 20
OTHER_TOKEN = "0x" + "71" * 20


def transfer_log(token: str, sender: str, receiver: str, value: int) -> LogEntry:
    return LogEntry(
        token,
        (TRANSFER_TOPIC, bytes(12) + bytes.fromhex(sender[2:]), bytes(12) + bytes.fromhex(receiver[2:])),
        value.to_bytes(32, "big"),
    )


def receipt(*logs: LogEntry, status: int = 1) -> Receipt:
    return Receipt("0x" + "ee" * 32, status, 7, A, TOKEN, 50_000, GWEI, tuple(logs))


def test_receipt_check_sums_the_tokens_transfers_from_payer_to_payee() -> None:
    one = 10**18
    batch = receipt(
        transfer_log(TOKEN, A, B, one),
        transfer_log(TOKEN, A, C, 5 * one),
        transfer_log(TOKEN, A, B, one // 2),
    )
    assert check_receipt(
        batch, token=TOKEN.upper().replace("0X", "0x"), payer=A, payee=B, amount=Decimal("1.5")
    ) == (3 * one // 2)
    with pytest.raises(PaymentRejectedError, match=r"moved 1.5 GLM from .* less than the 1.6 claimed"):
        check_receipt(batch, token=TOKEN, payer=A, payee=B, amount=Decimal("1.6"))
    with pytest.raises(PaymentRejectedError, match="moved 0 GLM"):
        check_receipt(batch, token=TOKEN, payer=C, payee=B, amount=Decimal(1))  # wrong payer
    with pytest.raises(PaymentRejectedError, match="status 0"):
        check_receipt(
            receipt(transfer_log(TOKEN, A, B, one), status=0),
            token=TOKEN,
            payer=A,
            payee=B,
            amount=Decimal(1),
        )
    with pytest.raises(PaymentRejectedError, match="only of other contracts"):
        check_receipt(
            receipt(transfer_log(OTHER_TOKEN, A, B, one)), token=TOKEN, payer=A, payee=B, amount=Decimal(1)
        )
    with pytest.raises(PaymentRejectedError, match="no Transfer log"):
        check_receipt(receipt(), token=TOKEN, payer=A, payee=B, amount=Decimal(1))
    # An ERC-721 Transfer (token id indexed, no data) is not read as a token amount.
    nft = LogEntry(TOKEN, (TRANSFER_TOPIC, bytes(32), bytes(32), (10**30).to_bytes(32, "big")), b"")
    assert transfers_in([nft]) == []


# --- settings ---------------------------------------------------------------------------------------


def test_settings_from_the_environment() -> None:
    assert SenderSettings.from_env({}) == SenderSettings()
    settings = SenderSettings.from_env(
        {"GOLEM_PAYMENT_CYCLE_SECS": "5", "GOLEM_PAYMENT_MAX_BATCH": "50", "GOLEM_PAYMENT_POLL_SECS": "0.05"}
    )
    assert (settings.cycle_interval, settings.max_batch, settings.poll_interval) == (5.0, 50, 0.05)
    assert SenderSettings.from_env({"ERC20_SENDOUT_INTERVAL_SECS": "7"}).cycle_interval == 7.0
    with pytest.raises(InvalidInputError, match="GOLEM_PAYMENT_MAX_BATCH"):
        SenderSettings.from_env({"GOLEM_PAYMENT_MAX_BATCH": "ten"})
    with pytest.raises(InvalidInputError, match="GOLEM_PAYMENT_CYCLE_SECS"):
        SenderSettings.from_env({"GOLEM_PAYMENT_CYCLE_SECS": "soon"})
    with pytest.raises(InvalidInputError, match="max_batch must be between 1 and 256"):
        SenderSettings.from_env({"GOLEM_PAYMENT_MAX_BATCH": "1000"})
    with pytest.raises(InvalidInputError, match="poll_interval"):
        SenderSettings(poll_interval=0)
    with pytest.raises(InvalidInputError, match="cycle_interval"):
        SenderSettings(cycle_interval=float("nan"))
