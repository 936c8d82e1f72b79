"""Payment acceptance: the platform the requestor chose must be one we are paid on.

yapapi counters with ``golem.com.payment.chosen-platform`` (the first platform both sides have an
address on) and its own ``golem.com.payment.platform.<p>.address``. Without a chosen platform the
negotiation may go on (COUNTER), but no agreement can be approved.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from provider.negotiator.base import NegotiationContext, NegotiationResult
from provider.offers import P_CHOSEN_PLATFORM, platform_address_key


class PaymentPlatform:
    name = "payment-platform"

    def __init__(self, platforms: Iterable[str]) -> None:
        self.platforms = tuple(platforms)

    def negotiate(
        self, demand: Mapping[str, Any], offer: dict[str, Any], ctx: NegotiationContext
    ) -> NegotiationResult:
        chosen = demand.get(P_CHOSEN_PLATFORM)
        if chosen is None:
            return NegotiationResult.counter(offer, "no payment platform chosen yet")
        ours = ", ".join(self.platforms)
        if not isinstance(chosen, str) or chosen not in self.platforms:
            return NegotiationResult.reject(
                f"payment platform {chosen!r} is not accepted; this provider is paid on: {ours}"
            )
        if platform_address_key(chosen) not in offer:
            return NegotiationResult.reject(f"this offer has no address on payment platform {chosen!r}")
        address = demand.get(platform_address_key(chosen))
        if not isinstance(address, str) or not address:
            return NegotiationResult.reject(f"the demand names no payer address on platform {chosen!r}")
        return NegotiationResult.accept(offer)
