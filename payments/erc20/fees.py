"""EIP-1559 fees within a network's cap, and the 10 % bump a replacement needs.

A transaction offers ``maxPriorityFeePerGas`` (the network's configured tip) and ``maxFeePerGas``
(``2 * baseFee + tip``, room for the base fee to double, but never above the network's cap). When
the base fee itself is over the cap nothing is sent: paying more than the operator allowed is not
ours to decide. A stuck transaction is replaced with both fees raised by at least 10 % (what geth
style pools demand; anvil accepts less, so tests cannot catch a violation, see pitfall B5.1).
"""

from __future__ import annotations

from dataclasses import dataclass

from payments.erc20.units import format_gwei


@dataclass(frozen=True)
class Fees:
    """The two EIP-1559 fee fields, in wei."""

    max_fee: int
    priority_fee: int

    def __post_init__(self) -> None:
        if self.priority_fee < 0 or self.max_fee < self.priority_fee:
            raise ValueError(f"inconsistent fees {self}")

    def __str__(self) -> str:
        return f"max fee {format_gwei(self.max_fee)} gwei, tip {format_gwei(self.priority_fee)} gwei"


class FeeCapError(Exception):
    """The base fee is over the network's cap; nothing can be sent until it falls."""

    def __init__(self, base_fee: int, cap: int) -> None:
        super().__init__(f"base fee {format_gwei(base_fee)} gwei over the cap {format_gwei(cap)} gwei")
        self.base_fee = base_fee
        self.cap = cap


class BumpBlockedError(Exception):
    """A 10 % bump would go over the cap, so a stuck transaction cannot be replaced."""


def bumped(value: int) -> int:
    """``value`` raised by at least 10 %, rounded up (and at least by one wei)."""
    return max(value + 1, (value * 11 + 9) // 10)


def initial_fees(base_fee: int, priority_fee: int, cap: int) -> Fees:
    """Fees for a new transaction: ``min(cap, 2 * base + tip)``, at least ``base + tip`` if the cap allows."""
    if base_fee > cap:
        raise FeeCapError(base_fee, cap)
    max_fee = min(cap, max(2 * base_fee + priority_fee, base_fee + priority_fee))
    return Fees(max_fee=max_fee, priority_fee=min(priority_fee, max_fee))


def replacement_fees(old: Fees, base_fee: int, priority_fee: int, cap: int) -> Fees:
    """Fees for a same-nonce replacement: both fields ≥ 110 % of ``old``, within ``cap``.

    Also at least what a new transaction would offer now (the base fee may have risen since).
    """
    if base_fee > cap:
        raise FeeCapError(base_fee, cap)
    tip = max(bumped(old.priority_fee), priority_fee)
    max_fee = max(bumped(old.max_fee), 2 * base_fee + tip)
    if max_fee > cap:
        # Offer what the cap allows, as long as it is still a 10 % bump over the old fee.
        max_fee = cap
    if max_fee < bumped(old.max_fee) or tip > max_fee:
        raise BumpBlockedError(f"a 10 % bump over {old} would exceed the cap of {format_gwei(cap)} gwei")
    return Fees(max_fee=max_fee, priority_fee=tip)
