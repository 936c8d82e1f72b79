"""Money and address units at the chain boundary: Decimal GLM ↔ integer wei, gwei, addresses.

The payment service counts in :class:`~decimal.Decimal` GLM; the chain counts in integer wei (18
decimals). Amounts yapapi sends can carry more than 18 fractional digits (``str(Decimal(0.1))``),
so :func:`to_wei` rounds *up*: the payee then receives at least what each order claims, and a
provider summing the claims citing one transfer never finds the transfer short by a fraction of a
wei. Every conversion runs in :data:`~payments.allocation.MONEY`, never in float.
"""

from __future__ import annotations

import re
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from payments.allocation import MONEY

TOKEN_DECIMALS = 18
WEI_PER_TOKEN = 10**TOKEN_DECIMALS
WEI_PER_GWEI = 10**9
MAX_UINT256 = 2**256 - 1

_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_TX_HASH = re.compile(r"^0x[0-9a-fA-F]{64}$")
ZERO_ADDRESS = "0x" + "00" * 20


def to_wei(amount: Decimal) -> int:
    """``amount`` GLM in wei, rounded up to a whole wei; refuses what no ERC-20 transfer can carry."""
    if not amount.is_finite() or amount <= 0:
        raise ValueError(f"a payment must be a positive amount, not {amount}")
    wei = int(MONEY.multiply(amount, Decimal(WEI_PER_TOKEN)).to_integral_value(rounding=ROUND_CEILING))
    if wei > MAX_UINT256:
        raise ValueError(f"{amount} is more than an ERC-20 amount can hold")
    return wei


def from_wei(wei: int) -> Decimal:
    """``wei`` as a Decimal of whole tokens (or whole gas coin), exact."""
    return Decimal(wei).scaleb(-TOKEN_DECIMALS, MONEY)


def gwei_to_wei(gwei: Decimal) -> int:
    """A fee in gwei as whole wei, rounded down (a cap is never exceeded by rounding)."""
    return int(MONEY.multiply(gwei, Decimal(WEI_PER_GWEI)).to_integral_value(rounding=ROUND_FLOOR))


def format_gwei(wei: int) -> str:
    """A fee for people: ``25.5``, ``0.000001``, ``20`` (gwei, no exponent)."""
    text = format(Decimal(wei).scaleb(-9, MONEY), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def format_tokens(wei: int) -> str:
    """An amount for people: whole tokens, no exponent, no trailing zeros."""
    text = format(from_wei(wei), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def normalize_address(value: str) -> str:
    """A 20-byte hex address in lower case; ``ValueError`` for anything else."""
    if not isinstance(value, str) or not _ADDRESS.match(value):
        raise ValueError(f"not an address (0x followed by 40 hex digits): {value!r}")
    return value.lower()


def is_tx_hash(value: str) -> bool:
    """Whether ``value`` reads as a 32-byte ``0x`` hex transaction hash."""
    return isinstance(value, str) and bool(_TX_HASH.match(value))
