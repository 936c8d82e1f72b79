"""The offer builder: yapapi's demand matches it and yapapi's default strategy scores it."""

from __future__ import annotations

import json
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest

from market.core.clock import to_millis
from market.core.errors import ConfigError
from market.demo import PLATFORM, demo_demand
from market.props import match
from provider.config import Pricing, ProviderConfig
from provider.offers import (
    P_COEFFS,
    P_USAGE_VECTOR,
    build_offer,
    linear_coefficients,
    offer_specs,
    platform_address_key,
    pricing_from_properties,
)
from provider.presets import Preset
from tests.provider.factories import HARDWARE, NOW, REQUESTOR

PROVIDER_ID = "0x" + "ab" * 20


def offer_for(runtime: str = "vm", **changes: Any) -> tuple[dict[str, Any], str]:
    config = ProviderConfig(data_dir="/tmp/unused", **changes)
    spec = next(s for s in offer_specs(config, []) if s.runtime == runtime)
    offer = build_offer(spec, HARDWARE, config, PROVIDER_ID, NOW)
    # What the requestor sees went through JSON: ints and floats must survive as themselves.
    return json.loads(json.dumps(offer.properties)), offer.constraints


def test_yapapi_demand_matches_the_vm_offer_both_ways() -> None:
    props, constraints = offer_for("vm")
    demand_props, demand_constraints = demo_demand(REQUESTOR, to_millis(NOW) + 15 * 60 * 1000)
    result = match(demand_props, demand_constraints, props, constraints)
    assert result.matched, result.explain()


def test_a_vm_demand_does_not_match_the_wasm_offer_nor_another_subnet() -> None:
    demand_props, demand_constraints = demo_demand(REQUESTOR, to_millis(NOW) + 15 * 60 * 1000)
    props, constraints = offer_for("wasmtime")
    assert not match(demand_props, demand_constraints, props, constraints).matched
    props, constraints = offer_for("vm", subnet="devnet-7")
    result = match(demand_props, demand_constraints, props, constraints)
    assert not result.matched and "subnet" in result.explain()


def test_offer_carries_the_properties_yapapi_reads() -> None:
    props, constraints = offer_for("vm", node_name="provider-1")
    assert props["golem.com.scheme"] == "payu"
    assert props["golem.com.pricing.model"] == "linear"
    assert props[P_USAGE_VECTOR] == ["golem.usage.cpu_sec", "golem.usage.duration_sec"]
    coeffs = props[P_COEFFS]
    assert len(coeffs) == 3 and all(isinstance(c, float) for c in coeffs)
    assert props["golem.srv.caps.multi-activity"] is True
    assert props[platform_address_key(PLATFORM)] == PROVIDER_ID
    assert props["golem.com.payment.protocol.version"] == 3
    assert props["golem.node.id.name"] == "provider-1"
    assert props["golem.inf.cpu.threads"] == 4 and props["golem.inf.mem.gib"] == 8.0
    assert isinstance(props["golem.runtime.capabilities"], list)
    assert props["golem.com.scheme.payu.debit-note.interval-sec?"] == 120
    assert props["golem.com.payment.debit-notes.accept-timeout?"] == 240
    assert constraints == f"(&(golem.srv.comp.expiration>{to_millis(NOW)})(golem.node.debug.subnet=public))"


async def test_yapapi_default_strategy_scores_the_offer_above_zero() -> None:
    from yapapi.props.com import Counter
    from yapapi.strategy import LeastExpensiveLinearPayuMS

    # Golem()'s default caps (spec §4.5).
    strategy = LeastExpensiveLinearPayuMS(
        max_fixed_price=Decimal("1.0"),
        max_price_for={Counter.CPU: Decimal("0.2"), Counter.TIME: Decimal("0.1")},
    )
    props, _ = offer_for("vm")
    score = await strategy.score_offer(SimpleNamespace(id="offer-1", props=props))  # type: ignore[arg-type]
    assert 0 < score < 100
    # An integer coefficient would break yapapi's parser: show that our check is meaningful.
    broken = dict(props, **{P_COEFFS: [0, 0, 0]})
    with pytest.raises(Exception, match="float"):
        await strategy.score_offer(SimpleNamespace(id="offer-2", props=broken))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("pricing", "expected"),
    [
        (
            Pricing(
                cpu_per_hour=Decimal("0.36"), duration_per_hour=Decimal("0.036"), start_price=Decimal("0.5")
            ),
            [0.0001, 0.00001, 0.5],
        ),
        (
            Pricing(cpu_per_hour=Decimal(0), duration_per_hour=Decimal(0), start_price=Decimal(0)),
            [0.0, 0.0, 0.0],
        ),
        (
            Pricing(cpu_per_hour=Decimal("0.1"), duration_per_hour=Decimal("0.02")),
            [float(Decimal("0.1") / 3600), float(Decimal("0.02") / 3600), 0.0],
        ),
    ],
)
def test_per_hour_prices_become_per_second_float_coefficients(
    pricing: Pricing, expected: list[float]
) -> None:
    coeffs = linear_coefficients(pricing)
    assert all(isinstance(c, float) for c in coeffs)
    assert coeffs == pytest.approx(expected, rel=1e-12)


def test_pricing_reads_back_as_decimal() -> None:
    props, _ = offer_for(
        "vm", pricing={"vm": {"cpu_per_hour": "0.36", "duration_per_hour": "0.036", "start_price": "0.5"}}
    )
    pricing = pricing_from_properties(props)
    assert pricing.cpu_sec == Decimal("0.0001") and pricing.duration_sec == Decimal("0.00001")
    assert pricing.fixed == Decimal("0.5")
    assert pricing.cost(Decimal(60), Decimal(60)) == Decimal("0.5066")
    with pytest.raises(ValueError):
        pricing_from_properties({P_COEFFS: [0.1], P_USAGE_VECTOR: ["golem.usage.cpu_sec"]})


def test_active_presets_choose_the_offers() -> None:
    presets = [
        Preset(name="cheap-vm", runtime="vm", pricing=Pricing(cpu_per_hour=Decimal("0.01"))),
        Preset(name="wasm", runtime="wasmtime"),
    ]
    config = ProviderConfig(data_dir="/tmp/unused", active_presets=["cheap-vm"])
    (spec,) = offer_specs(config, presets)
    assert spec.runtime == "vm" and spec.preset == "cheap-vm" and spec.pricing.cpu_per_hour == Decimal("0.01")
    assert [s.runtime for s in offer_specs(ProviderConfig(data_dir="/tmp/unused"), presets)] == [
        "vm",
        "wasmtime",
    ]
    with pytest.raises(ConfigError, match="does not exist"):
        offer_specs(ProviderConfig(data_dir="/tmp/unused", active_presets=["nope"]), presets)
    with pytest.raises(ConfigError, match="not enabled"):
        offer_specs(ProviderConfig(data_dir="/tmp/unused", runtimes=["vm"], active_presets=["wasm"]), presets)
