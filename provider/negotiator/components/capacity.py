"""At most N agreements at once: beyond that, proposals and agreements are turned down for now."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from provider.negotiator.base import NegotiationContext, NegotiationResult


class MaxAgreements:
    name = "max-agreements"

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def negotiate(
        self, demand: Mapping[str, Any], offer: dict[str, Any], ctx: NegotiationContext
    ) -> NegotiationResult:
        if ctx.active_agreements >= self.limit:
            return NegotiationResult.reject(
                f"no capacity: {ctx.active_agreements} of {self.limit} agreements in use", final=False
            )
        return NegotiationResult.accept(offer)
