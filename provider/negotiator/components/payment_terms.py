"""Negotiable payment terms: debit-note interval, payment timeout, debit-note accept timeout.

Our offer proposes a value for each ``…?`` property. A requestor that wants a term sends its value;
within our bounds we accept it and echo it in our Draft (so both sides' properties agree), outside them
we counter with the nearest bound. A term the requestor leaves out is dropped from our Draft: without
``debit-note.interval-sec?`` there are no mid-agreement payments (yapapi omits both MAP properties when
its expiration is under 5 h), and without ``payment-timeout-sec?`` debit notes are not payable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from provider.negotiator.base import NegotiationContext, NegotiationResult
from provider.offers import P_ACCEPT_TIMEOUT, P_DEBIT_NOTE_INTERVAL, P_PAYMENT_TIMEOUT


@dataclass(frozen=True)
class Bounds:
    low: float
    high: float

    def clamp(self, value: float) -> float:
        return min(max(value, self.low), self.high)


class PaymentTerms:
    name = "payment-terms"

    def __init__(
        self, *, debit_note_interval: Bounds, payment_timeout: Bounds, accept_timeout: Bounds
    ) -> None:
        self.bounds = {
            P_DEBIT_NOTE_INTERVAL: debit_note_interval,
            P_PAYMENT_TIMEOUT: payment_timeout,
            P_ACCEPT_TIMEOUT: accept_timeout,
        }

    def negotiate(
        self, demand: Mapping[str, Any], offer: dict[str, Any], ctx: NegotiationContext
    ) -> NegotiationResult:
        notes: list[str] = []
        for key, bounds in self.bounds.items():
            if key not in offer:
                continue  # we do not offer this term
            wanted = demand.get(key)
            map_off = key == P_PAYMENT_TIMEOUT and P_DEBIT_NOTE_INTERVAL not in demand
            if wanted is None or map_off:
                del offer[key]
                continue
            if isinstance(wanted, bool) or not isinstance(wanted, int | float) or wanted <= 0:
                return NegotiationResult.reject(f"{key} must be a positive number of seconds, not {wanted!r}")
            if bounds.low <= wanted <= bounds.high:
                offer[key] = wanted
            else:
                ours = int(bounds.clamp(wanted))
                offer[key] = ours
                notes.append(f"{key}={wanted} is outside [{bounds.low:g}, {bounds.high:g}], offering {ours}")
        if notes:
            return NegotiationResult.counter(offer, "; ".join(notes))
        return NegotiationResult.accept(offer)
