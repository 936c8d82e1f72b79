"""Each negotiator component alone, table-driven, then the standard chain."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from market.demo import PLATFORM
from provider.config import ProviderConfig
from provider.negotiator import (
    CompositeNegotiator,
    NegotiationContext,
    NegotiationResult,
    Stage,
    Verdict,
    default_negotiator,
)
from provider.negotiator.components.capacity import MaxAgreements
from provider.negotiator.components.deny import DenyList
from provider.negotiator.components.expiration import ExpirationWindow
from provider.negotiator.components.payment import PaymentPlatform
from provider.negotiator.components.payment_terms import Bounds, PaymentTerms
from provider.negotiator.components.subnet import Subnet
from provider.offers import (
    P_ACCEPT_TIMEOUT,
    P_DEBIT_NOTE_INTERVAL,
    P_PAYMENT_TIMEOUT,
    build_offer,
    offer_specs,
    platform_address_key,
)
from tests.provider.factories import HARDWARE, NOW, REQUESTOR, requestor_counter

OFFER_ADDRESS = "0x" + "ab" * 20


def ctx(
    active: int = 0, requestor: str = REQUESTOR.node_id, stage: Stage = Stage.PROPOSAL
) -> NegotiationContext:
    return NegotiationContext(requestor_id=requestor, now=NOW, stage=stage, active_agreements=active)


def our_offer() -> dict[str, Any]:
    config = ProviderConfig(data_dir="/tmp/unused")
    return build_offer(offer_specs(config, [])[0], HARDWARE, config, OFFER_ADDRESS, NOW).properties


@pytest.mark.parametrize(
    ("demand_subnet", "verdict"),
    [("public", Verdict.ACCEPT), ("devnet", Verdict.REJECT), (None, Verdict.REJECT)],
)
def test_subnet(demand_subnet: str | None, verdict: Verdict) -> None:
    demand = {} if demand_subnet is None else {"golem.node.debug.subnet": demand_subnet}
    result = Subnet("public").negotiate(demand, our_offer(), ctx())
    assert result.verdict is verdict
    if verdict is Verdict.REJECT:
        assert "subnet" in result.reason


@pytest.mark.parametrize(
    ("requestor", "verdict"),
    [
        (REQUESTOR.node_id, Verdict.REJECT),
        (REQUESTOR.node_id.upper().replace("0X", "0x"), Verdict.REJECT),
        ("0x" + "22" * 20, Verdict.ACCEPT),
    ],
)
def test_deny_list(requestor: str, verdict: Verdict) -> None:
    result = DenyList([REQUESTOR.node_id]).negotiate({}, our_offer(), ctx(requestor=requestor))
    assert result.verdict is verdict


@pytest.mark.parametrize(
    ("active", "verdict"), [(0, Verdict.ACCEPT), (1, Verdict.ACCEPT), (2, Verdict.REJECT)]
)
def test_max_agreements(active: int, verdict: Verdict) -> None:
    result = MaxAgreements(2).negotiate({}, our_offer(), ctx(active=active))
    assert result.verdict is verdict
    if verdict is Verdict.REJECT:
        assert not result.final  # "not now", not "never"
        assert "no capacity" in result.reason


@pytest.mark.parametrize(
    ("changes", "verdict", "reason_part"),
    [
        ({}, Verdict.ACCEPT, ""),
        ({"golem.com.payment.chosen-platform": None}, Verdict.COUNTER, "no payment platform chosen"),
        ({"golem.com.payment.chosen-platform": "erc20-mainnet-glm"}, Verdict.REJECT, "not accepted"),
        ({"golem.com.payment.chosen-platform": 7}, Verdict.REJECT, "not accepted"),
        ({platform_address_key(PLATFORM): None}, Verdict.REJECT, "no payer address"),
    ],
)
def test_payment_platform(changes: dict[str, Any], verdict: Verdict, reason_part: str) -> None:
    demand, _ = requestor_counter()
    for key, value in changes.items():
        if value is None:
            demand.pop(key, None)
        else:
            demand[key] = value
    result = PaymentPlatform([PLATFORM]).negotiate(demand, our_offer(), ctx())
    assert result.verdict is verdict
    assert reason_part in result.reason


TERMS = PaymentTerms(
    debit_note_interval=Bounds(60, 3600), payment_timeout=Bounds(60, 86400), accept_timeout=Bounds(30, 3600)
)


@pytest.mark.parametrize(
    ("demand", "verdict", "expected"),
    [
        # yapapi with a 15-minute expiration: only the accept timeout is echoed, no mid-agreement payments.
        ({P_ACCEPT_TIMEOUT: 240}, Verdict.ACCEPT, {P_ACCEPT_TIMEOUT: 240}),
        # yapapi with >= 5 h: interval kept, payment timeout clamped up to its minimum of 18000 s.
        (
            {P_ACCEPT_TIMEOUT: 240, P_DEBIT_NOTE_INTERVAL: 120, P_PAYMENT_TIMEOUT: 18000},
            Verdict.ACCEPT,
            {P_ACCEPT_TIMEOUT: 240, P_DEBIT_NOTE_INTERVAL: 120, P_PAYMENT_TIMEOUT: 18000},
        ),
        # An interval without a payment timeout: debit notes, but none payable.
        ({P_DEBIT_NOTE_INTERVAL: 300}, Verdict.ACCEPT, {P_DEBIT_NOTE_INTERVAL: 300}),
        # A payment timeout without an interval means nothing: dropped.
        ({P_PAYMENT_TIMEOUT: 18000}, Verdict.ACCEPT, {}),
        ({}, Verdict.ACCEPT, {}),
        # Out of bounds: counter with the nearest bound.
        ({P_DEBIT_NOTE_INTERVAL: 10}, Verdict.COUNTER, {P_DEBIT_NOTE_INTERVAL: 60}),
        (
            {P_DEBIT_NOTE_INTERVAL: 120, P_PAYMENT_TIMEOUT: 10**7},
            Verdict.COUNTER,
            {P_DEBIT_NOTE_INTERVAL: 120, P_PAYMENT_TIMEOUT: 86400},
        ),
        ({P_ACCEPT_TIMEOUT: 5}, Verdict.COUNTER, {P_ACCEPT_TIMEOUT: 30}),
        ({P_ACCEPT_TIMEOUT: "soon"}, Verdict.REJECT, None),
        ({P_ACCEPT_TIMEOUT: True}, Verdict.REJECT, None),
        ({P_DEBIT_NOTE_INTERVAL: -1}, Verdict.REJECT, None),
    ],
)
def test_payment_terms(demand: dict[str, Any], verdict: Verdict, expected: dict[str, Any] | None) -> None:
    result = TERMS.negotiate(demand, our_offer(), ctx())
    assert result.verdict is verdict
    if expected is not None:
        terms = {
            k: v
            for k, v in result.offer.items()
            if k in (P_ACCEPT_TIMEOUT, P_DEBIT_NOTE_INTERVAL, P_PAYMENT_TIMEOUT)
        }
        assert terms == expected


@pytest.mark.parametrize(
    ("expires_in", "with_payments", "verdict", "reason_part"),
    [
        (timedelta(minutes=15), False, Verdict.ACCEPT, ""),
        (timedelta(minutes=2), False, Verdict.REJECT, "at least 300s"),
        (timedelta(hours=11), False, Verdict.ACCEPT, ""),
        (timedelta(hours=13), False, Verdict.REJECT, "without mid-agreement payments"),
        (timedelta(hours=13), True, Verdict.ACCEPT, ""),
        (timedelta(days=31), True, Verdict.REJECT, "at most"),
        (None, False, Verdict.REJECT, "no numeric"),
    ],
)
def test_expiration_window(
    expires_in: timedelta | None, with_payments: bool, verdict: Verdict, reason_part: str
) -> None:
    demand: dict[str, Any] = {}
    if expires_in is not None:
        demand["golem.srv.comp.expiration"] = int((NOW + expires_in).timestamp() * 1000)
    offer = {P_PAYMENT_TIMEOUT: 18000} if with_payments else {}
    result = ExpirationWindow(300, 12 * 3600, 30 * 24 * 3600).negotiate(demand, offer, ctx())
    assert result.verdict is verdict
    assert reason_part in result.reason


class _Recorder:
    """A component that records its calls and returns a fixed verdict."""

    def __init__(
        self, name: str, result: NegotiationResult | None = None, add: dict[str, Any] | None = None
    ) -> None:
        self.name = name
        self.result = result
        self.add = add or {}
        self.calls = 0

    def negotiate(self, demand: Any, offer: dict[str, Any], ctx: NegotiationContext) -> NegotiationResult:
        self.calls += 1
        if self.result is not None:
            return self.result
        return NegotiationResult.accept({**offer, **self.add})


def test_composite_threads_the_offer_and_stops_at_the_first_rejection() -> None:
    first = _Recorder("first", add={"a": 1})
    second = _Recorder("second", NegotiationResult.reject("nope"))
    third = _Recorder("third")
    result = CompositeNegotiator([first, second, third]).negotiate({}, {}, ctx())
    assert result.verdict is Verdict.REJECT and result.reason == "nope"
    assert (first.calls, second.calls, third.calls) == (1, 1, 0)

    threaded = CompositeNegotiator([_Recorder("a", add={"a": 1}), _Recorder("b", add={"b": 2})])
    assert threaded.negotiate({}, {}, ctx()) == NegotiationResult.accept({"a": 1, "b": 2})


def test_composite_counter_collects_reasons() -> None:
    chain = CompositeNegotiator(
        [_Recorder("x", NegotiationResult.counter({"k": 1}, "why")), _Recorder("y", add={"z": 0})]
    )
    result = chain.negotiate({}, {}, ctx())
    assert result.verdict is Verdict.COUNTER
    assert result.offer == {"k": 1, "z": 0}
    assert result.reason == "x: why"


def test_default_chain_accepts_yapapi_and_echoes_its_terms() -> None:
    chain = default_negotiator(ProviderConfig(data_dir="/tmp/unused"))
    demand, _ = requestor_counter({P_ACCEPT_TIMEOUT: 240})
    result = chain.negotiate(demand, our_offer(), ctx())
    assert result.verdict is Verdict.ACCEPT, result.reason
    assert result.offer[P_ACCEPT_TIMEOUT] == 240
    assert P_DEBIT_NOTE_INTERVAL not in result.offer and P_PAYMENT_TIMEOUT not in result.offer

    long_demand, _ = requestor_counter(
        {P_ACCEPT_TIMEOUT: 240, P_DEBIT_NOTE_INTERVAL: 120, P_PAYMENT_TIMEOUT: 18000},
        expires_in=timedelta(hours=20),
    )
    assert chain.negotiate(long_demand, our_offer(), ctx()).verdict is Verdict.ACCEPT
    # The same 20 h without mid-agreement payments is too long.
    no_map, _ = requestor_counter(expires_in=timedelta(hours=20))
    assert chain.negotiate(no_map, our_offer(), ctx()).verdict is Verdict.REJECT


@pytest.mark.parametrize("expires_in", [timedelta(minutes=15), timedelta(hours=6)])
async def test_yapapis_own_counter_is_accepted(expires_in: timedelta) -> None:
    """yapapi's MarketStrategy builds the counter from our offer; our chain accepts it as is."""
    from types import SimpleNamespace

    from yapapi.props.builder import DemandBuilder
    from yapapi.strategy import LeastExpensiveLinearPayuMS

    demand, _ = requestor_counter(expires_in=expires_in, now=datetime.now(UTC))
    builder = DemandBuilder()  # type: ignore[no-untyped-call]
    builder.properties.update(demand)
    offer = our_offer()
    countered = await LeastExpensiveLinearPayuMS().respond_to_provider_offer(
        builder,
        SimpleNamespace(props=offer, issuer=OFFER_ADDRESS),  # type: ignore[arg-type]
    )
    live = NegotiationContext(REQUESTOR.node_id, datetime.now(UTC), Stage.PROPOSAL, 0)
    result = default_negotiator(ProviderConfig(data_dir="/tmp/unused")).negotiate(
        countered.properties, offer, live
    )
    assert result.verdict is Verdict.ACCEPT, result.reason
    mid_agreement_payments = expires_in >= timedelta(hours=5)
    assert (P_PAYMENT_TIMEOUT in result.offer) is mid_agreement_payments
    if mid_agreement_payments:  # yapapi raised our 120 s payment timeout to its minimum; we took it
        assert result.offer[P_PAYMENT_TIMEOUT] == 18000 and result.offer[P_DEBIT_NOTE_INTERVAL] == 120
