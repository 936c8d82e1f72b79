# pragma version ~=0.4.3
"""
@title Batch transfer for one ERC-20 token
@notice Pays many payees in one transaction. Each entry packs a payee and an amount into one word,
        `address (20 bytes) ‖ amount (12 bytes, < 2**96)`, the layout of Golem's multi-transfer
        contract. Tokens move straight from the caller to each payee with `transferFrom`, so every
        payee sees a `Transfer` from the payer; the caller approves this contract once.
"""

from ethereum.ercs import IERC20

MAX_ENTRIES: constant(uint256) = 256
AMOUNT_MASK: constant(uint256) = 2**96 - 1

token: public(immutable(IERC20))


@deploy
def __init__(token_: IERC20):
    token = token_


@external
def golemTransferDirectPacked(payments: DynArray[bytes32, MAX_ENTRIES]):
    """
    @notice Transfer each packed entry's amount from the caller to its payee.
    """
    for entry: bytes32 in payments:
        word: uint256 = convert(entry, uint256)
        payee: address = convert(convert(word >> 96, uint160), address)
        amount: uint256 = word & AMOUNT_MASK
        assert extcall token.transferFrom(msg.sender, payee, amount, default_return_value=True), "transfer failed"
