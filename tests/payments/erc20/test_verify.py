"""The provider's side: a verify-only ERC-20 driver checking real transactions on anvil."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from decimal import Decimal

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from payments.devchain import ChainInfo, deploy, free_port
from payments.erc20 import Erc20Driver
from payments.errors import DriverError, PaymentRejectedError
from payments.networks import Network

from .conftest import WEI, DriverFactory, send, token


@pytest.fixture
async def provider_driver(make_driver: DriverFactory) -> Erc20Driver:
    return await make_driver("provider", account=None)


def transfer(
    w3: Web3,
    chain: ChainInfo,
    payer: LocalAccount,
    payee: str,
    wei: int,
    contract: str | None = None,
    *,
    mined: bool = True,
) -> str:
    data = token(w3, chain, contract).encode_abi("transfer", [Web3.to_checksum_address(payee), wei])
    return send(
        w3, payer, {"to": Web3.to_checksum_address(contract or chain.token), "data": data}, mined=mined
    )


async def test_a_real_transfer_verifies_and_everything_else_is_rejected_with_the_reason(
    provider_driver: Erc20Driver, payer: LocalAccount, holesky: Network, w3: Web3, chain: ChainInfo
) -> None:
    payee = Account.create().address
    tx_hash = transfer(w3, chain, payer, payee, 2 * WEI)

    async def verify(**change: object) -> None:
        claim: dict[str, object] = {
            "details": tx_hash,
            "payer": payer.address,
            "payee": payee,
            "amount": Decimal(2),
            "platform": holesky.platform,
            **change,
        }
        await provider_driver.verify_payment(**claim)  # type: ignore[arg-type]

    await verify()
    await verify(payer=payer.address.lower(), payee=payee.upper().replace("0X", "0x"), amount=Decimal("1.5"))
    with pytest.raises(
        PaymentRejectedError, match=r"moved 2 tGLM from .* less than the 2\.000000000000000001"
    ):
        await verify(amount=Decimal("2.000000000000000001"))
    with pytest.raises(PaymentRejectedError, match="moved 0 tGLM"):
        await verify(payee=Account.create().address)
    with pytest.raises(PaymentRejectedError, match="moved 0 tGLM"):
        await verify(payer=Account.create().address)
    with pytest.raises(PaymentRejectedError, match="no such transaction"):
        await verify(details="0x" + "12" * 32)
    for malformed in ("dummy:123", tx_hash[:-2], tx_hash[2:], "0x" + "zz" * 32, ""):
        with pytest.raises(PaymentRejectedError, match="not a transaction hash"):
            await verify(details=malformed)
    with pytest.raises(DriverError, match="does not serve"):
        await verify(platform="erc20-polygon-glm")


async def test_a_reverted_transfer_is_rejected(
    provider_driver: Erc20Driver, payer: LocalAccount, holesky: Network, w3: Web3, chain: ChainInfo
) -> None:
    payee = Account.create().address
    # More than the payer holds, with a fixed gas limit so the node does not refuse to estimate it.
    tx_hash = send(
        w3,
        payer,
        {
            "to": Web3.to_checksum_address(chain.token),
            "data": token(w3, chain).encode_abi("transfer", [Web3.to_checksum_address(payee), 10**6 * WEI]),
            "gas": 100_000,
        },
    )
    assert w3.eth.get_transaction_receipt(tx_hash)["status"] == 0  # type: ignore[arg-type]
    with pytest.raises(PaymentRejectedError, match="failed on chain"):
        await provider_driver.verify_payment(
            details=tx_hash, payer=payer.address, payee=payee, amount=Decimal(1), platform=holesky.platform
        )


async def test_transfers_of_another_token_count_for_nothing(
    provider_driver: Erc20Driver, payer: LocalAccount, holesky: Network, w3: Web3, chain: ChainInfo
) -> None:
    # A look-alike token: same code, same symbol, another address.
    fake = deploy(w3, payer.key.hex(), "TestGLM", "Test Golem Network Token", "tGLM")
    send(
        w3,
        payer,
        {"to": Web3.to_checksum_address(fake), "data": token(w3, chain, fake).encode_abi("create", [])},
    )
    payee = Account.create().address
    tx_hash = transfer(w3, chain, payer, payee, 5 * WEI, contract=fake)
    with pytest.raises(PaymentRejectedError, match="only of other contracts"):
        await provider_driver.verify_payment(
            details=tx_hash, payer=payer.address, payee=payee, amount=Decimal(1), platform=holesky.platform
        )


async def test_an_unmined_transaction_cannot_be_told_yet(
    provider_driver: Erc20Driver,
    payer: LocalAccount,
    holesky: Network,
    w3: Web3,
    chain: ChainInfo,
    manual_mining: Callable[[], None],
) -> None:
    payee = Account.create().address
    tx_hash = transfer(w3, chain, payer, payee, WEI, mined=False)
    with pytest.raises(DriverError, match="not mined yet") as caught:
        await provider_driver.verify_payment(
            details=tx_hash, payer=payer.address, payee=payee, amount=Decimal(1), platform=holesky.platform
        )
    assert not isinstance(caught.value, PaymentRejectedError)
    manual_mining()
    await provider_driver.verify_payment(
        details=tx_hash, payer=payer.address, payee=payee, amount=Decimal(1), platform=holesky.platform
    )


async def test_an_unreachable_chain_is_a_driver_error_not_a_rejection(
    make_driver: DriverFactory, holesky: Network
) -> None:
    offline = dataclasses.replace(holesky, rpc_urls=(f"http://127.0.0.1:{free_port()}",))
    driver = await make_driver("offline", account=None, net=offline)
    with pytest.raises(DriverError, match="eth_getTransactionReceipt failed") as caught:
        await driver.verify_payment(
            details="0x" + "12" * 32,
            payer=Account.create().address,
            payee=Account.create().address,
            amount=Decimal(1),
            platform=offline.platform,
        )
    assert not isinstance(caught.value, PaymentRejectedError)


async def test_a_second_rpc_url_takes_over(
    make_driver: DriverFactory, holesky: Network, chain: ChainInfo
) -> None:
    backup = dataclasses.replace(holesky, rpc_urls=(f"http://127.0.0.1:{free_port()}", chain.rpc_url))
    driver = await make_driver("failover", account=None, net=backup)
    holder = Account.create().address
    assert await driver.balance(holder, backup.platform) == 0
    assert await driver.gas_balance(holder, backup.platform) == 0
    assert chain.rpc_url in driver.status().description
    assert driver.status().problems == () and not driver.status().is_dummy
