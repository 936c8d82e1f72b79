"""Only requestors in our subnet (``golem.node.debug.subnet``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from provider.negotiator.base import NegotiationContext, NegotiationResult
from provider.offers import P_SUBNET


class Subnet:
    name = "subnet"

    def __init__(self, subnet: str) -> None:
        self.subnet = subnet

    def negotiate(
        self, demand: Mapping[str, Any], offer: dict[str, Any], ctx: NegotiationContext
    ) -> NegotiationResult:
        theirs = demand.get(P_SUBNET)
        if theirs != self.subnet:
            return NegotiationResult.reject(
                f"subnet {theirs!r} is not this provider's subnet {self.subnet!r}"
            )
        return NegotiationResult.accept(offer)
