"""The ERC-20 driver paying on a real anvil chain: cycles, batching, crash safety, stuck and dropped
transactions, missing funds. Cycles are driven by a fake clock (60 s apart); the chain is real."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.exceptions import TransactionNotFound

from market.core.clock import FakeClock
from payments.devchain import ChainInfo, free_port, fund, set_gas_balance
from payments.driver import PaymentState, ScheduledPayment
from payments.erc20 import SenderSettings
from payments.erc20.store import SendState
from payments.errors import DriverError, PaymentRejectedError
from payments.networks import Network

from .conftest import (
    FAST,
    WEI,
    Confirmations,
    DriverFactory,
    nonce,
    rpc,
    send,
    set_base_fee,
    token,
    token_wei,
    wait_for,
    with_cap,
)


def new_payee() -> str:
    address: str = Account.create().address
    return address.lower()


async def test_one_payee_gets_one_transfer_for_all_its_orders(
    make_driver: DriverFactory,
    payer: LocalAccount,
    holesky: Network,
    clock: FakeClock,
    w3: Web3,
    chain: ChainInfo,
) -> None:
    driver = await make_driver(clock=clock)
    confirmations = Confirmations()
    driver.add_listener(confirmations)
    payee = new_payee()
    before = nonce(w3, payer.address)
    for i, amount in enumerate(["1.5", "0.25"]):
        scheduled = await driver.schedule_payment(
            payer=payer.address,
            payee=payee,
            amount=Decimal(amount),
            platform=holesky.platform,
            document_ids=[f"invoice-{i}"],
            order_id=f"order-{i}",
        )
        assert scheduled.state is PaymentState.SCHEDULED and scheduled.payment_id == f"order-{i}"
    await driver.tick()
    assert nonce(w3, payer.address) == before  # nothing goes out before the cycle

    clock.advance(60)
    [(_, tx_hash), _] = await confirmations.wait(2)
    assert confirmations.orders == {"order-0": tx_hash, "order-1": tx_hash}
    assert tx_hash.startswith("0x") and tx_hash == tx_hash.lower() and len(tx_hash) == 66
    receipt = w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
    assert receipt["to"].lower() == chain.token.lower()  # a plain transfer, not the batch contract
    assert nonce(w3, payer.address) == before + 1
    assert token_wei(w3, chain, payee) == 175 * WEI // 100
    assert await driver.balance(payee, holesky.platform) == Decimal("1.75")
    assert await driver.order_state("order-1") == ScheduledPayment("order-1", PaymentState.CONFIRMED, tx_hash)
    assert await driver.order_state("unknown") is None
    await driver.verify_payment(
        details=tx_hash, payer=payer.address, payee=payee, amount=Decimal("1.75"), platform=holesky.platform
    )
    assert driver.status().problems == ()


async def test_several_payees_share_a_batch_after_a_one_time_approval(
    make_driver: DriverFactory,
    payer: LocalAccount,
    holesky: Network,
    clock: FakeClock,
    w3: Web3,
    chain: ChainInfo,
) -> None:
    driver = await make_driver(clock=clock)
    confirmations = Confirmations()
    driver.add_listener(confirmations)
    payees = [new_payee() for _ in range(3)]
    for i, payee in enumerate(payees):
        await driver.schedule_payment(
            payer=payer.address,
            payee=payee,
            amount=Decimal(i + 1),
            platform=holesky.platform,
            document_ids=[f"d{i}"],
            order_id=f"o{i}",
        )
    before = nonce(w3, payer.address)
    clock.advance(60)
    seen = await confirmations.wait(3)
    [tx_hash] = {h for _, h in seen}
    # One approval, then one batch transaction from the payer to the batch contract.
    assert nonce(w3, payer.address) == before + 2
    assert (
        token(w3, chain)
        .functions.allowance(payer.address, Web3.to_checksum_address(chain.multi_transfer))
        .call()
        == 2**256 - 1
    )
    receipt = w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
    assert receipt["to"].lower() == chain.multi_transfer.lower()
    for i, payee in enumerate(payees):
        assert token_wei(w3, chain, payee) == (i + 1) * WEI
        # Each payee sees a Transfer from the payer and verifies the batch on its own.
        await driver.verify_payment(
            details=tx_hash,
            payer=payer.address,
            payee=payee,
            amount=Decimal(i + 1),
            platform=holesky.platform,
        )
    with pytest.raises(PaymentRejectedError, match=r"less than the 1\.5 claimed"):
        await driver.verify_payment(
            details=tx_hash,
            payer=payer.address,
            payee=payees[0],
            amount=Decimal("1.5"),
            platform=holesky.platform,
        )

    # The next batch needs no second approval.
    for i, payee in enumerate(payees[:2]):
        await driver.schedule_payment(
            payer=payer.address,
            payee=payee,
            amount=Decimal("0.5"),
            platform=holesky.platform,
            document_ids=[],
            order_id=f"again-{i}",
        )
    clock.advance(60)
    await confirmations.wait(5)
    assert nonce(w3, payer.address) == before + 3
    kinds = [s.kind for s in driver.sender(holesky.platform).store.sends(holesky.platform)]
    assert kinds == ["approve", "batch", "batch"]


async def test_a_near_due_date_pulls_the_cycle_earlier(
    make_driver: DriverFactory, payer: LocalAccount, holesky: Network, w3: Web3
) -> None:
    clock = FakeClock()
    driver = await make_driver(
        clock=clock, settings=SenderSettings(cycle_interval=3600, due_margin=30, poll_interval=0.02)
    )
    confirmations = Confirmations()
    driver.add_listener(confirmations)
    before = nonce(w3, payer.address)
    await driver.schedule_payment(
        payer=payer.address,
        payee=new_payee(),
        amount=Decimal(1),
        platform=holesky.platform,
        document_ids=["note-1"],
        order_id="due-soon",
        due=clock.now() + timedelta(seconds=100),
    )
    clock.advance(69)  # the cycle runs 30 s before the due date: at 70 s, not after an hour
    await driver.tick()
    assert nonce(w3, payer.address) == before and confirmations.seen == []
    clock.advance(1)
    await confirmations.wait(1)
    assert nonce(w3, payer.address) == before + 1


async def test_schedule_payment_is_idempotent_and_refuses_bad_orders(
    make_driver: DriverFactory,
    payer: LocalAccount,
    holesky: Network,
    clock: FakeClock,
    w3: Web3,
    chain: ChainInfo,
) -> None:
    driver = await make_driver(clock=clock)
    confirmations = Confirmations()
    driver.add_listener(confirmations)
    payee = new_payee()
    order = {
        "payer": payer.address,
        "payee": payee,
        "amount": Decimal("2"),
        "platform": holesky.platform,
        "document_ids": ["invoice"],
        "order_id": "same",
    }
    first = await driver.schedule_payment(**order)  # type: ignore[arg-type]
    assert await driver.schedule_payment(**{**order, "payee": payee.upper().replace("0X", "0x")}) == first  # type: ignore[arg-type]
    with pytest.raises(DriverError, match="was scheduled as 2 to"):
        await driver.schedule_payment(**{**order, "amount": Decimal(3)})  # type: ignore[arg-type]
    clock.advance(60)
    [(_, tx_hash)] = await confirmations.wait(1)
    # After it is paid, scheduling it again answers its confirmation and pays nothing more.
    again = await driver.schedule_payment(**order)  # type: ignore[arg-type]
    assert (again.state, again.details) == (PaymentState.CONFIRMED, tx_hash)
    clock.advance(60)
    await driver.tick()
    assert token_wei(w3, chain, payee) == 2 * WEI

    refusals = [
        ({"payer": new_payee()}, "cannot pay from"),
        ({"payee": "0x1234"}, "not an address"),
        ({"payee": "0x" + "00" * 20}, "zero address"),
        ({"amount": Decimal(0)}, "positive amount"),
        ({"amount": Decimal(-1)}, "positive amount"),
        ({"platform": "erc20-polygon-glm"}, "does not serve"),
    ]
    for change, message in refusals:
        with pytest.raises(DriverError, match=message):
            await driver.schedule_payment(**{**order, "order_id": "bad", **change})  # type: ignore[arg-type,dict-item]
    assert await driver.order_state("bad") is None

    provider_side = await make_driver("provider", account=None)
    with pytest.raises(DriverError, match="no account"):
        await provider_side.schedule_payment(**{**order, "order_id": "x"})  # type: ignore[arg-type]


async def test_a_crash_between_storing_and_broadcasting_pays_exactly_once(
    make_driver: DriverFactory, payer: LocalAccount, holesky: Network, w3: Web3, chain: ChainInfo
) -> None:
    crashed = await make_driver(start=False)
    payee = new_payee()
    await crashed.schedule_payment(
        payer=payer.address,
        payee=payee,
        amount=Decimal("3"),
        platform=holesky.platform,
        document_ids=["invoice"],
        order_id="survivor",
    )
    before = nonce(w3, payer.address)
    [attempt] = await crashed.sender(holesky.platform).prepare_cycle()
    # Signed and stored, never broadcast: the "process died here" state.
    assert attempt.broadcast is None and len(attempt.raw) > 100
    assert nonce(w3, payer.address) == before and token_wei(w3, chain, payee) == 0
    await crashed.close()

    restarted = await make_driver(start=False)
    confirmations = Confirmations()
    restarted.add_listener(confirmations)
    await restarted.start()
    assert await confirmations.wait(1) == [("survivor", attempt.tx_hash)]
    assert nonce(w3, payer.address) == before + 1
    assert token_wei(w3, chain, payee) == 3 * WEI
    # More rounds change nothing: the order is paid and acknowledged.
    for _ in range(3):
        await restarted.tick()
    assert nonce(w3, payer.address) == before + 1 and confirmations.seen == [("survivor", attempt.tx_hash)]


async def test_confirmations_are_announced_until_a_listener_takes_them(
    make_driver: DriverFactory, payer: LocalAccount, holesky: Network, clock: FakeClock
) -> None:
    silent = await make_driver(clock=clock)  # no listener at all when the transfer confirms
    await silent.schedule_payment(
        payer=payer.address,
        payee=new_payee(),
        amount=Decimal(1),
        platform=holesky.platform,
        document_ids=[],
        order_id="quiet",
    )
    clock.advance(60)
    await wait_for(lambda: silent.sender(holesky.platform).store.unnotified() != [], what="a confirmation")
    [(_, tx_hash)] = silent.sender(holesky.platform).store.unnotified()
    await silent.close()

    restarted = await make_driver(clock=clock, start=False)
    flaky = Confirmations()
    flaky.failures_left = 1
    restarted.add_listener(flaky)
    await restarted.start()
    await wait_for(lambda: flaky.failures_left == 0, what="the first, failing announcement")
    await restarted.tick()
    assert flaky.seen == []  # backing off
    clock.advance(1)
    assert await flaky.wait(1) == [("quiet", tx_hash)]
    await restarted.close()

    again = await make_driver(clock=clock, start=False)
    later = Confirmations()
    again.add_listener(later)
    await again.start()
    await again.tick()
    assert later.seen == []  # acknowledged once; not announced after another restart


async def test_a_dropped_transaction_is_broadcast_again(
    make_driver: DriverFactory,
    payer: LocalAccount,
    holesky: Network,
    clock: FakeClock,
    w3: Web3,
    chain: ChainInfo,
    manual_mining: Callable[[], None],
) -> None:
    driver = await make_driver(clock=clock)
    confirmations = Confirmations()
    driver.add_listener(confirmations)
    payee = new_payee()
    await driver.schedule_payment(
        payer=payer.address,
        payee=payee,
        amount=Decimal(4),
        platform=holesky.platform,
        document_ids=[],
        order_id="dropped",
    )
    clock.advance(60)
    store = driver.sender(holesky.platform).store
    await wait_for(lambda: bool(store.live_sends(holesky.platform)), what="a transaction")
    [send_row] = store.live_sends(holesky.platform)
    [attempt] = store.attempts(send_row.send_id)
    await wait_for(lambda: rpc(w3, "txpool_status")["pending"] == "0x1", what="the transaction in the pool")

    rpc(w3, "anvil_dropTransaction", attempt.tx_hash)  # what anvil does to an underpriced tx (pitfall B5.2)
    await wait_for(lambda: rpc(w3, "txpool_status")["pending"] == "0x1", what="the re-broadcast")
    manual_mining()
    assert await confirmations.wait(1) == [("dropped", attempt.tx_hash)]
    assert token_wei(w3, chain, payee) == 4 * WEI
    assert len(store.attempts(send_row.send_id)) == 1


async def test_a_stuck_transaction_is_replaced_with_ten_percent_higher_fees(
    make_driver: DriverFactory,
    payer: LocalAccount,
    holesky: Network,
    clock: FakeClock,
    w3: Web3,
    chain: ChainInfo,
    manual_mining: Callable[[], None],
) -> None:
    driver = await make_driver(clock=clock)
    confirmations = Confirmations()
    driver.add_listener(confirmations)
    payee = new_payee()
    await driver.schedule_payment(
        payer=payer.address,
        payee=payee,
        amount=Decimal(5),
        platform=holesky.platform,
        document_ids=[],
        order_id="stuck",
    )
    clock.advance(60)
    store = driver.sender(holesky.platform).store
    await wait_for(lambda: bool(store.live_sends(holesky.platform)), what="a transaction")
    [send_row] = store.live_sends(holesky.platform)
    await wait_for(lambda: store.attempts(send_row.send_id)[0].broadcast is not None, what="the broadcast")
    clock.advance(59)
    await driver.tick()
    assert len(store.attempts(send_row.send_id)) == 1  # not yet

    clock.advance(1)
    await wait_for(lambda: len(store.attempts(send_row.send_id)) == 2, what="a replacement")
    first, second = store.attempts(send_row.send_id)
    await wait_for(
        lambda: second.tx_hash in str(rpc(w3, "txpool_content")), what="the replacement in the pool"
    )
    with pytest.raises(TransactionNotFound):
        w3.eth.get_transaction(first.tx_hash)  # type: ignore[arg-type]  # the pool dropped the replaced one
    new = w3.eth.get_transaction(second.tx_hash)  # type: ignore[arg-type]
    assert new["nonce"] == send_row.nonce
    assert new["maxFeePerGas"] * 10 >= first.max_fee * 11
    assert new["maxPriorityFeePerGas"] * 10 >= first.priority_fee * 11
    assert (new["maxFeePerGas"], new["maxPriorityFeePerGas"]) == (second.max_fee, second.priority_fee)

    manual_mining()
    assert await confirmations.wait(1) == [("stuck", second.tx_hash)]
    assert w3.eth.get_transaction_receipt(second.tx_hash)["status"] == 1  # type: ignore[arg-type]
    assert token_wei(w3, chain, payee) == 5 * WEI  # paid once
    assert store.send(send_row.send_id).state is SendState.CONFIRMED  # type: ignore[union-attr]
    assert driver.status().problems == ()


async def test_a_stuck_transaction_the_cap_cannot_bump_is_reported(
    make_driver: DriverFactory,
    payer: LocalAccount,
    holesky: Network,
    clock: FakeClock,
    w3: Web3,
    manual_mining: Callable[[], None],
) -> None:
    set_base_fee(w3, 10**9)
    # The cap sits just above the base fee: the first offer is the cap itself, no room for +10 %.
    driver = await make_driver(clock=clock, net=with_cap(holesky, Decimal("1.05")))
    confirmations = Confirmations()
    driver.add_listener(confirmations)
    await driver.schedule_payment(
        payer=payer.address,
        payee=new_payee(),
        amount=Decimal(1),
        platform=holesky.platform,
        document_ids=[],
        order_id="capped",
    )
    clock.advance(60)
    store = driver.sender(holesky.platform).store
    await wait_for(lambda: bool(store.live_sends(holesky.platform)), what="a transaction")
    clock.advance(60)
    await wait_for(lambda: any("stuck" in p for p in driver.status().problems), what="a stuck problem")
    [problem] = driver.status().problems
    assert "cannot be replaced" in problem and "exceed the cap of 1.05 gwei" in problem
    [send_row] = store.live_sends(holesky.platform)
    assert len(store.attempts(send_row.send_id)) == 1
    manual_mining()
    await confirmations.wait(1)
    await wait_for(lambda: driver.status().problems == (), what="the problem to clear")


async def test_nothing_is_sent_while_the_base_fee_is_over_the_cap(
    make_driver: DriverFactory, payer: LocalAccount, holesky: Network, clock: FakeClock, w3: Web3
) -> None:
    set_base_fee(w3, 10**9)
    driver = await make_driver(clock=clock, net=with_cap(holesky, Decimal("0.5")))
    await driver.schedule_payment(
        payer=payer.address,
        payee=new_payee(),
        amount=Decimal(1),
        platform=holesky.platform,
        document_ids=[],
        order_id="expensive",
    )
    before = nonce(w3, payer.address)
    clock.advance(60)
    await wait_for(lambda: driver.status().problems != (), what="a problem")
    assert driver.status().problems == (
        "holesky: base fee 1 gwei over the cap 0.5 gwei; payments wait until it falls",
    )
    assert nonce(w3, payer.address) == before
    assert (await driver.order_state("expensive")).state is PaymentState.SCHEDULED  # type: ignore[union-attr]


async def test_no_gas_coin_is_a_clear_problem_until_funded(
    make_driver: DriverFactory,
    payer: LocalAccount,
    holesky: Network,
    clock: FakeClock,
    w3: Web3,
    chain: ChainInfo,
) -> None:
    set_gas_balance(w3, payer.address, Decimal("0.000000000000001"))
    driver = await make_driver(clock=clock)
    confirmations = Confirmations()
    driver.add_listener(confirmations)
    payee = new_payee()
    await driver.schedule_payment(
        payer=payer.address,
        payee=payee,
        amount=Decimal(1),
        platform=holesky.platform,
        document_ids=[],
        order_id="no-gas",
    )
    before = nonce(w3, payer.address)
    clock.advance(60)
    await wait_for(lambda: driver.status().problems != (), what="a problem")
    [problem] = driver.status().problems
    assert problem.startswith("holesky: not enough tETH for gas: have 0.000000000000001, need ")
    assert nonce(w3, payer.address) == before

    set_gas_balance(w3, payer.address, Decimal(1))
    clock.advance(5)  # the retry interval
    await confirmations.wait(1)
    assert token_wei(w3, chain, payee) == WEI and driver.status().problems == ()


async def test_too_few_tokens_is_a_clear_problem_until_funded(
    make_driver: DriverFactory,
    payer: LocalAccount,
    holesky: Network,
    clock: FakeClock,
    w3: Web3,
    chain: ChainInfo,
) -> None:
    driver = await make_driver(clock=clock)
    confirmations = Confirmations()
    driver.add_listener(confirmations)
    payees = [new_payee(), new_payee()]
    for i, payee in enumerate(payees):
        await driver.schedule_payment(
            payer=payer.address,
            payee=payee,
            amount=Decimal(700),
            platform=holesky.platform,
            document_ids=[],
            order_id=f"big-{i}",
        )
    before = nonce(w3, payer.address)
    clock.advance(60)
    await wait_for(lambda: any("tGLM" in p for p in driver.status().problems), what="a problem")
    assert driver.status().problems == ("holesky: not enough tGLM: have 1000, need 1400",)
    assert nonce(w3, payer.address) == before

    donor: LocalAccount = Account.create()
    fund(chain, donor.key.hex())
    send(
        w3,
        donor,
        {
            "to": Web3.to_checksum_address(chain.token),
            "data": token(w3, chain).encode_abi("transfer", [payer.address, 500 * WEI]),
        },
    )
    clock.advance(5)
    await confirmations.wait(2)
    assert [token_wei(w3, chain, p) for p in payees] == [700 * WEI, 700 * WEI]
    assert driver.status().problems == ()


def _balance_slot(w3: Web3, info: ChainInfo, holder: str) -> str:
    """The storage slot of ``balanceOf[holder]`` in our token (found, not assumed from Vyper's layout)."""
    held = token_wei(w3, info, holder)
    key = bytes(12) + bytes.fromhex(holder[2:])
    for index in range(16):
        base = index.to_bytes(32, "big")
        for slot in (Web3.keccak(base + key), Web3.keccak(key + base)):
            position = int.from_bytes(slot, "big")
            value = int.from_bytes(
                w3.eth.get_storage_at(Web3.to_checksum_address(info.token), position), "big"
            )
            if value == held:
                return "0x" + slot.hex()
    raise AssertionError("balance slot not found")


async def test_a_reverted_transaction_puts_its_orders_back(
    make_driver: DriverFactory,
    payer: LocalAccount,
    holesky: Network,
    clock: FakeClock,
    w3: Web3,
    chain: ChainInfo,
    manual_mining: Callable[[], None],
) -> None:
    driver = await make_driver(clock=clock)
    confirmations = Confirmations()
    driver.add_listener(confirmations)
    payee = new_payee()
    await driver.schedule_payment(
        payer=payer.address,
        payee=payee,
        amount=Decimal(10),
        platform=holesky.platform,
        document_ids=[],
        order_id="reverts",
    )
    slot = _balance_slot(w3, chain, payer.address.lower())
    held = token_wei(w3, chain, payer.address)
    clock.advance(60)
    store = driver.sender(holesky.platform).store
    await wait_for(lambda: bool(store.live_sends(holesky.platform)), what="a transaction")
    [send_row] = store.live_sends(holesky.platform)
    await wait_for(lambda: rpc(w3, "txpool_status")["pending"] == "0x1", what="the transaction in the pool")
    # The payer's tokens vanish before the transfer is mined: it reverts on chain.
    token_contract = Web3.to_checksum_address(chain.token)
    rpc(w3, "anvil_setStorageAt", token_contract, slot, "0x" + bytes(32).hex())
    manual_mining()
    await wait_for(lambda: store.send(send_row.send_id).state is SendState.REVERTED, what="the revert")  # type: ignore[union-attr]
    reverted = store.send(send_row.send_id).tx_hash  # type: ignore[union-attr]
    assert w3.eth.get_transaction_receipt(reverted)["status"] == 0  # type: ignore[arg-type]
    await wait_for(lambda: any("reverted" in p for p in driver.status().problems), what="the problem")
    assert (await driver.order_state("reverts")).state is PaymentState.SCHEDULED  # type: ignore[union-attr]
    assert store.order("reverts").state.value == "pending"  # type: ignore[union-attr]
    with pytest.raises(PaymentRejectedError, match="status 0"):
        await driver.verify_payment(
            details=str(reverted),
            payer=payer.address,
            payee=payee,
            amount=Decimal(10),
            platform=holesky.platform,
        )

    # The tokens come back; the next cycle pays the order once.
    rpc(w3, "anvil_setStorageAt", token_contract, slot, "0x" + held.to_bytes(32, "big").hex())
    rpc(w3, "anvil_setAutomine", True)
    clock.advance(60)
    [(_, paid)] = await confirmations.wait(1)
    assert paid != reverted and token_wei(w3, chain, payee) == 10 * WEI
    await wait_for(lambda: driver.status().problems == (), what="the problem to clear")


async def test_a_nonce_taken_by_someone_else_releases_its_orders(
    make_driver: DriverFactory,
    payer: LocalAccount,
    holesky: Network,
    clock: FakeClock,
    w3: Web3,
    chain: ChainInfo,
) -> None:
    first = await make_driver(clock=clock, start=False)
    payee = new_payee()
    await first.schedule_payment(
        payer=payer.address,
        payee=payee,
        amount=Decimal(2),
        platform=holesky.platform,
        document_ids=[],
        order_id="bumped-out",
    )
    [attempt] = await first.sender(holesky.platform).prepare_cycle()
    await first.close()
    # The same key spends the nonce elsewhere before our stored transaction goes out.
    send(w3, payer, {"to": payer.address, "value": 0, "gas": 21_000})

    driver = await make_driver(clock=clock, start=False)
    confirmations = Confirmations()
    driver.add_listener(confirmations)
    await driver.start()
    await wait_for(lambda: any("not one of ours" in p for p in driver.status().problems), what="the problem")
    assert confirmations.seen == []
    clock.advance(holesky.transaction_timeout)
    [(_, tx_hash)] = await confirmations.wait(1)
    assert tx_hash != attempt.tx_hash
    assert token_wei(w3, chain, payee) == 2 * WEI
    assert w3.eth.get_transaction_receipt(tx_hash)["status"] == 1  # type: ignore[arg-type]


async def test_an_unreachable_rpc_is_a_problem_not_a_crash(
    make_driver: DriverFactory, payer: LocalAccount, holesky: Network, clock: FakeClock
) -> None:
    offline = dataclasses.replace(holesky, rpc_urls=(f"http://127.0.0.1:{free_port()}",))
    driver = await make_driver(clock=clock, net=offline, settings=FAST)
    await driver.schedule_payment(
        payer=payer.address,
        payee=new_payee(),
        amount=Decimal(1),
        platform=offline.platform,
        document_ids=[],
        order_id="offline",
    )
    await wait_for(lambda: driver.status().problems != (), what="a problem")
    [problem] = driver.status().problems
    assert problem.startswith("holesky: eth_chainId failed: http://127.0.0.1:")
    with pytest.raises(DriverError, match="failed"):
        await driver.balance(payer.address, offline.platform)
