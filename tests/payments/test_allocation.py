"""Money arithmetic and the allocation domain: exact decimals, over-spend refused with nothing changed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from market.core.errors import InvalidTransition
from payments.allocation import (
    Allocation,
    AllocationState,
    add,
    check_reservation,
    format_amount,
    parse_amount,
    subtract,
)
from payments.errors import AllocationReleasedError, InsufficientFundsError

from .conftest import YAPAPI_BUDGET

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def allocation(total: str = "1", spent: str = "0", timeout: datetime | None = None) -> Allocation:
    return Allocation(
        allocation_id="a1",
        owner_id="0x" + "aa" * 20,
        address="0x" + "aa" * 20,
        platform="dummy-glm",
        total=Decimal(total),
        spent=Decimal(spent),
        timestamp=NOW,
        timeout=timeout,
        created=NOW,
        updated=NOW,
    )


def test_yapapi_budget_string_survives_exactly() -> None:
    budget = parse_amount(YAPAPI_BUDGET)
    assert format_amount(budget) == YAPAPI_BUDGET
    # The default 28-digit context would round these; ours must not.
    assert format_amount(add(budget, Decimal(0))) == YAPAPI_BUDGET
    assert subtract(budget, Decimal("0.1")) == Decimal("5.5511151231257827021181583404541015625E-18")
    assert add(budget, budget) == Decimal("0.200000000000000011102230246251565404236316680908203125")


@pytest.mark.parametrize(
    ("wire", "expected"),
    [("1", "1"), ("0.0002", "0.0002"), (" 2.50 ", "2.50"), ("1E+2", "100"), ("0E-8", "0.00000000"), (3, "3")],
)
def test_parse_and_format(wire: object, expected: str) -> None:
    assert format_amount(parse_amount(wire)) == expected


def test_json_floats_are_read_by_their_shortest_repr() -> None:
    assert parse_amount(0.1) == Decimal("0.1")


@pytest.mark.parametrize(
    "bad", ["", "abc", "-1", "NaN", "Infinity", "1e999999", "1e-70", "1" * 101, True, None, [1]]
)
def test_bad_amounts_are_refused(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_amount(bad)


@given(st.decimals(min_value=0, max_value=10**12, places=18, allow_nan=False, allow_infinity=False))
def test_format_parse_round_trip(amount: Decimal) -> None:
    assert parse_amount(format_amount(amount)) == amount
    assert "E" not in format_amount(amount)


@given(
    st.lists(
        st.decimals(min_value=0, max_value=10**6, places=30, allow_nan=False, allow_infinity=False),
        max_size=20,
    )
)
def test_spending_in_steps_never_loses_a_digit(amounts: list[Decimal]) -> None:
    total = add(*amounts)
    a = allocation(total=format_amount(total))
    for amount in amounts:
        a = a.spend(amount, NOW)
    assert a.spent == total
    assert a.remaining == 0


def test_overspend_is_refused_and_nothing_changes() -> None:
    a = allocation(total=YAPAPI_BUDGET, spent="0.1")
    with pytest.raises(InsufficientFundsError) as info:
        a.spend(Decimal("0.0000000000000001"), NOW)
    assert info.value.available == Decimal("5.5511151231257827021181583404541015625E-18")
    assert a.spent == Decimal("0.1")
    # Exactly what is left is fine.
    assert a.spend(a.remaining, NOW).remaining == 0


def test_released_or_expired_allocations_cannot_be_spent() -> None:
    released = allocation().release(NOW)
    assert released.state(NOW) is AllocationState.RELEASED
    with pytest.raises(AllocationReleasedError):
        released.spend(Decimal("0.1"), NOW)
    with pytest.raises(InvalidTransition):
        released.release(NOW)

    expiring = allocation(timeout=NOW + timedelta(seconds=10))
    assert expiring.state(NOW) is AllocationState.ACTIVE
    later = NOW + timedelta(seconds=10)
    assert expiring.state(later) is AllocationState.EXPIRED
    with pytest.raises(AllocationReleasedError):
        expiring.spend(Decimal("0.1"), later)
    assert expiring.release(later).state(later) is AllocationState.RELEASED


def test_reservation_counts_what_live_allocations_still_hold() -> None:
    others = [allocation(total="5", spent="1"), allocation(total="100").release(NOW)]
    check_reservation(
        Decimal("6"), Decimal("10"), others, now=NOW, platform="dummy-glm", address=others[0].address
    )
    with pytest.raises(InsufficientFundsError) as info:
        check_reservation(
            Decimal("6.000000000000000001"),
            Decimal("10"),
            others,
            now=NOW,
            platform="dummy-glm",
            address=others[0].address,
        )
    assert info.value.available == Decimal("6")
    # Another platform's allocations do not count.
    check_reservation(
        Decimal("10"), Decimal("10"), others, now=NOW, platform="dummy-other", address=others[0].address
    )
