"""The offer builder: one offer per runtime (or active preset), with the property names yapapi reads.

Pricing conversion: the operator prices in GLM per *hour* (CPU-hour, wall-clock hour) plus a start
price, as :class:`~decimal.Decimal`. The offer's ``golem.com.pricing.model.linear.coeffs`` are per
*second* of ``golem.usage.cpu_sec`` and ``golem.usage.duration_sec`` plus the fixed start price, in
the order of ``golem.com.usage.vector``. Each per-second price is rounded to 18 decimals (GLM's
wei precision) and written as a JSON float, because yapapi asserts ``isinstance(coeff, float)``.
:func:`pricing_from_properties` reads them back as Decimal for billing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from market.core.clock import to_millis
from market.core.errors import ConfigError
from provider.config import Pricing, ProviderConfig, RuntimeName
from provider.hardware import Hardware
from provider.presets import Preset

CPU_SEC = "golem.usage.cpu_sec"
DURATION_SEC = "golem.usage.duration_sec"
USAGE_VECTOR: tuple[str, ...] = (CPU_SEC, DURATION_SEC)

P_SUBNET = "golem.node.debug.subnet"
P_EXPIRATION = "golem.srv.comp.expiration"
P_CHOSEN_PLATFORM = "golem.com.payment.chosen-platform"
P_COEFFS = "golem.com.pricing.model.linear.coeffs"
P_USAGE_VECTOR = "golem.com.usage.vector"
P_DEBIT_NOTE_INTERVAL = "golem.com.scheme.payu.debit-note.interval-sec?"
P_PAYMENT_TIMEOUT = "golem.com.scheme.payu.payment-timeout-sec?"
P_ACCEPT_TIMEOUT = "golem.com.payment.debit-notes.accept-timeout?"
PAYMENT_PROTOCOL_VERSION = 3

WEI = Decimal("1e-18")
SECONDS_PER_HOUR = Decimal(3600)


def platform_address_key(platform: str) -> str:
    return f"golem.com.payment.platform.{platform}.address"


@dataclass(frozen=True)
class RuntimeInfo:
    version: str
    capabilities: tuple[str, ...] = ()


RUNTIME_INFO: dict[str, RuntimeInfo] = {
    # Only what our exe units implement is advertised: vpn (TCP tunnels from the requestor into
    # its activity, see exeunits.vpn), no inet (outbound internet) yet.
    "vm": RuntimeInfo(version="0.1.0", capabilities=("vpn",)),
    "wasmtime": RuntimeInfo(version="0.1.0"),
}


@dataclass(frozen=True)
class OfferSpec:
    """What one offer sells: a runtime at a price; ``preset`` names its origin."""

    runtime: RuntimeName
    pricing: Pricing
    preset: str


@dataclass(frozen=True)
class Offer:
    spec: OfferSpec
    properties: dict[str, Any]
    constraints: str


@dataclass(frozen=True)
class LinearPricing:
    """Per-second prices and the fixed price of an offer, in GLM, as billing needs them."""

    cpu_sec: Decimal
    duration_sec: Decimal
    fixed: Decimal

    def cost(self, cpu_sec: Decimal, duration_sec: Decimal) -> Decimal:
        return self.cpu_sec * cpu_sec + self.duration_sec * duration_sec + self.fixed


def per_second(per_hour: Decimal) -> Decimal:
    return (per_hour / SECONDS_PER_HOUR).quantize(WEI, rounding=ROUND_HALF_EVEN)


def linear_coefficients(pricing: Pricing) -> list[float]:
    """``[cpu_sec price, duration_sec price, fixed]`` as floats, in :data:`USAGE_VECTOR` order."""
    fixed = pricing.start_price.quantize(WEI, rounding=ROUND_HALF_EVEN)
    return [
        float(per_second(pricing.cpu_per_hour)),
        float(per_second(pricing.duration_per_hour)),
        float(fixed),
    ]


def pricing_from_properties(props: dict[str, Any]) -> LinearPricing:
    """The linear prices an offer (or agreement offer) carries; raises ``ValueError`` if malformed."""
    coeffs = props.get(P_COEFFS)
    vector = props.get(P_USAGE_VECTOR)
    if not isinstance(coeffs, list) or not isinstance(vector, list) or len(coeffs) != len(vector) + 1:
        raise ValueError("offer has no linear pricing matching its usage vector")
    # repr() of a float is the shortest text that round-trips: 2.7777777777778e-05, not its binary noise.
    prices = {name: Decimal(repr(float(c))) for name, c in zip(vector, coeffs[:-1], strict=True)}
    return LinearPricing(
        cpu_sec=prices.get(CPU_SEC, Decimal(0)),
        duration_sec=prices.get(DURATION_SEC, Decimal(0)),
        fixed=Decimal(repr(float(coeffs[-1]))),
    )


def offer_specs(config: ProviderConfig, presets: list[Preset]) -> list[OfferSpec]:
    """One spec per active preset, or per enabled runtime when no preset is active.

    Raises :class:`~market.core.errors.ConfigError` for an active preset that is missing or whose
    runtime is not enabled.
    """
    if not config.active_presets:
        return [OfferSpec(runtime, config.pricing[runtime], runtime) for runtime in config.runtimes]
    by_name = {p.name: p for p in presets}
    specs = []
    for name in config.active_presets:
        preset = by_name.get(name)
        if preset is None:
            raise ConfigError(f"active preset {name!r} does not exist")
        if preset.runtime not in config.runtimes:
            raise ConfigError(f"preset {name!r} uses runtime {preset.runtime!r}, which is not enabled")
        specs.append(OfferSpec(preset.runtime, preset.pricing, name))
    return specs


def build_offer(
    spec: OfferSpec, hardware: Hardware, config: ProviderConfig, node_id: str, now: datetime
) -> Offer:
    """The flat properties and constraints of one offer (spec §4.5/§4.6), created at ``now``."""
    runtime = RUNTIME_INFO[spec.runtime]
    props: dict[str, Any] = {
        "golem.node.id.name": config.node_name,
        P_SUBNET: config.subnet,
        "golem.node.net.is-public": False,
        "golem.inf.cpu.threads": hardware.threads,
        "golem.inf.cpu.cores": hardware.cores,
        "golem.inf.cpu.architecture": hardware.architecture,
        "golem.inf.mem.gib": hardware.memory_gib,
        "golem.inf.storage.gib": hardware.storage_gib,
        "golem.runtime.name": spec.runtime,
        "golem.runtime.version": runtime.version,
        "golem.runtime.capabilities": list(runtime.capabilities),
        "golem.activity.caps.transfer.protocol": ["gftp", "http", "https"],
        "golem.srv.caps.multi-activity": True,
        "golem.srv.caps.payload-manifest": False,
        "golem.com.scheme": "payu",
        P_DEBIT_NOTE_INTERVAL: config.debit_note_interval_sec,
        P_PAYMENT_TIMEOUT: config.payment_timeout_sec,
        P_ACCEPT_TIMEOUT: config.debit_note_accept_timeout_sec,
        "golem.com.pricing.model": "linear",
        P_COEFFS: linear_coefficients(spec.pricing),
        P_USAGE_VECTOR: list(USAGE_VECTOR),
        # Until the payment driver lands, the address we are paid at is the node id.
        platform_address_key(config.payment_platform): node_id,
        "golem.com.payment.protocol.version": PAYMENT_PROTOCOL_VERSION,
    }
    constraints = f"(&({P_EXPIRATION}>{to_millis(now)})({P_SUBNET}={config.subnet}))"
    return Offer(spec=spec, properties=props, constraints=constraints)
