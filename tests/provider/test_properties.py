"""Property-based checks of the pricing conversion and the payment-terms negotiation."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from provider.config import Pricing
from provider.negotiator import NegotiationContext, Stage, Verdict
from provider.negotiator.components.payment_terms import Bounds, PaymentTerms
from provider.offers import (
    P_COEFFS,
    P_DEBIT_NOTE_INTERVAL,
    P_PAYMENT_TIMEOUT,
    P_USAGE_VECTOR,
    USAGE_VECTOR,
    linear_coefficients,
    per_second,
    pricing_from_properties,
)

prices = st.decimals(min_value=0, max_value=1000, places=6, allow_nan=False, allow_infinity=False)


@given(cpu=prices, duration=prices, start=prices)
def test_coefficients_are_floats_and_read_back_close(cpu: Decimal, duration: Decimal, start: Decimal) -> None:
    pricing = Pricing(cpu_per_hour=cpu, duration_per_hour=duration, start_price=start)
    coeffs = linear_coefficients(pricing)
    assert len(coeffs) == len(USAGE_VECTOR) + 1 and all(type(c) is float and c >= 0 for c in coeffs)
    back = pricing_from_properties({P_COEFFS: coeffs, P_USAGE_VECTOR: list(USAGE_VECTOR)})
    # A float keeps ~15 significant digits: the round trip is exact to that precision.
    for got, want in (
        (back.cpu_sec, per_second(cpu)),
        (back.duration_sec, per_second(duration)),
        (back.fixed, start),
    ):
        assert abs(got - want) <= abs(want) * Decimal("1e-14") + Decimal("1e-18")


TERMS = PaymentTerms(
    debit_note_interval=Bounds(60, 3600), payment_timeout=Bounds(120, 86400), accept_timeout=Bounds(30, 3600)
)
CTX = NegotiationContext("0xr", datetime(2026, 1, 1, tzinfo=UTC), Stage.PROPOSAL, 0)


@given(interval=st.integers(1, 10**6), timeout=st.integers(1, 10**7))
def test_payment_terms_echo_or_clamp(interval: int, timeout: int) -> None:
    offer = {P_DEBIT_NOTE_INTERVAL: 120, P_PAYMENT_TIMEOUT: 120}
    result = TERMS.negotiate({P_DEBIT_NOTE_INTERVAL: interval, P_PAYMENT_TIMEOUT: timeout}, offer, CTX)
    in_bounds = 60 <= interval <= 3600 and 120 <= timeout <= 86400
    assert result.verdict is (Verdict.ACCEPT if in_bounds else Verdict.COUNTER)
    assert 60 <= result.offer[P_DEBIT_NOTE_INTERVAL] <= 3600
    assert 120 <= result.offer[P_PAYMENT_TIMEOUT] <= 86400
    if in_bounds:
        assert (result.offer[P_DEBIT_NOTE_INTERVAL], result.offer[P_PAYMENT_TIMEOUT]) == (interval, timeout)
        # Echoing back what was agreed is stable: the requestor taking our values is accepted as is.
    again = TERMS.negotiate(
        {
            P_DEBIT_NOTE_INTERVAL: result.offer[P_DEBIT_NOTE_INTERVAL],
            P_PAYMENT_TIMEOUT: result.offer[P_PAYMENT_TIMEOUT],
        },
        dict(offer),
        CTX,
    )
    assert again.verdict is Verdict.ACCEPT and again.offer == result.offer
