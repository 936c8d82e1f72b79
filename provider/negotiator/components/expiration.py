"""The agreement's expiration (``golem.srv.comp.expiration``, ms since the epoch) within a window.

The upper bound is longer when mid-agreement payments are on (our offer-in-progress still carries
``payment-timeout-sec?`` after :class:`~provider.negotiator.components.payment_terms.PaymentTerms`),
because then the requestor pays as it goes instead of once at the end.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from provider.negotiator.base import NegotiationContext, NegotiationResult
from provider.offers import P_EXPIRATION, P_PAYMENT_TIMEOUT


class ExpirationWindow:
    name = "expiration"

    def __init__(self, min_sec: float, max_sec: float, max_with_payments_sec: float) -> None:
        self.min_sec = min_sec
        self.max_sec = max_sec
        self.max_with_payments_sec = max(max_sec, max_with_payments_sec)

    def negotiate(
        self, demand: Mapping[str, Any], offer: dict[str, Any], ctx: NegotiationContext
    ) -> NegotiationResult:
        raw = demand.get(P_EXPIRATION)
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            return NegotiationResult.reject(f"the demand has no numeric {P_EXPIRATION}")
        remaining = raw / 1000 - ctx.now.timestamp()
        if remaining < self.min_sec:
            return NegotiationResult.reject(
                f"the agreement would expire in {remaining:.0f}s; "
                f"this provider needs at least {self.min_sec:g}s"
            )
        limit = self.max_with_payments_sec if P_PAYMENT_TIMEOUT in offer else self.max_sec
        if remaining > limit:
            return NegotiationResult.reject(
                f"the agreement would expire in {remaining:.0f}s; this provider allows at most {limit:g}s"
                + ("" if P_PAYMENT_TIMEOUT in offer else " without mid-agreement payments")
            )
        return NegotiationResult.accept(offer)
