"""The provider's check that a transaction hash really pays what a payment confirmation claims.

The requestor's Payment message names a transaction; what counts is what the chain says it did:
the receipt must exist with status 1, and the ``Transfer`` logs *emitted by the network's token
contract* from the payer to the payee must add up to at least the amount claimed (all claims citing
that transaction together; the payment service sums them, so one transfer cannot be claimed twice).
A transfer through the batch contract qualifies: it moves tokens with ``transferFrom`` straight
from the payer, so each payee's log names the payer as sender. Logs of any other contract (a token
that merely calls itself GLM) count for nothing.
"""

from __future__ import annotations

from decimal import Decimal

from payments.erc20.calls import transfers_in
from payments.erc20.chain import Chain, ChainCallError, Receipt
from payments.erc20.units import format_tokens, is_tx_hash, normalize_address, to_wei
from payments.errors import DriverError, PaymentRejectedError


def check_receipt(
    receipt: Receipt, *, token: str, payer: str, payee: str, amount: Decimal, symbol: str = "GLM"
) -> int:
    """Raise :class:`PaymentRejectedError` unless ``receipt`` moves ``amount`` of ``token`` payer → payee.

    Returns the wei the receipt moved between the two (it may exceed the claim).
    """
    token, payer, payee = token.lower(), payer.lower(), payee.lower()
    if receipt.status != 1:
        raise PaymentRejectedError(f"transaction {receipt.tx_hash} failed on chain (status {receipt.status})")
    needed = to_wei(amount)
    transfers = transfers_in(receipt.logs)
    ours = [t for t in transfers if t.token == token]
    moved = sum(t.value for t in ours if t.sender == payer and t.receiver == payee)
    if moved >= needed:
        return moved
    if not ours:
        others = sorted({t.token for t in transfers})
        found = (
            f"Transfer logs only of other contracts ({', '.join(others)})" if others else "no Transfer log"
        )
        raise PaymentRejectedError(
            f"transaction {receipt.tx_hash} moved no {symbol} of token {token}: it has {found}"
        )
    raise PaymentRejectedError(
        f"transaction {receipt.tx_hash} moved {format_tokens(moved)} {symbol} from {payer} to {payee}, "
        f"less than the {amount:f} claimed"
    )


async def verify_on_chain(chain: Chain, *, details: str, payer: str, payee: str, amount: Decimal) -> int:
    """Fetch the receipt ``details`` names and :func:`check_receipt` it; the wei moved."""
    if not is_tx_hash(details):
        raise PaymentRejectedError(f"{details!r} is not a transaction hash (0x and 64 hex digits)")
    try:
        payer, payee = normalize_address(payer), normalize_address(payee)
    except ValueError as exc:
        raise PaymentRejectedError(str(exc)) from None
    if amount <= 0:
        raise PaymentRejectedError("a payment must be of a positive amount")
    try:
        receipt = await chain.receipt(details)
        if receipt is None:
            if await chain.knows(details):
                raise DriverError(f"transaction {details} is not mined yet")
            raise PaymentRejectedError(f"no such transaction {details} on {chain.network.name}")
    except ChainCallError as exc:
        raise DriverError(str(exc)) from None
    return check_receipt(
        receipt,
        token=chain.network.token_address,
        payer=payer,
        payee=payee,
        amount=amount,
        symbol=chain.network.token_symbol,
    )
