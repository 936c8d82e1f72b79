"""Chaining negotiator components, and the standard chain of a provider."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from provider.config import ProviderConfig
from provider.negotiator.base import NegotiationContext, NegotiationResult, NegotiatorComponent, Verdict
from provider.negotiator.components.capacity import MaxAgreements
from provider.negotiator.components.deny import DenyList
from provider.negotiator.components.expiration import ExpirationWindow
from provider.negotiator.components.payment import PaymentPlatform
from provider.negotiator.components.payment_terms import Bounds, PaymentTerms
from provider.negotiator.components.subnet import Subnet


class CompositeNegotiator:
    """Runs components in order, threading the offer through them; the first rejection wins.

    The result is ACCEPT only if every component accepted; a COUNTER from any of them makes the whole
    a COUNTER whose reason lists theirs.
    """

    name = "composite"

    def __init__(self, components: Sequence[NegotiatorComponent]) -> None:
        self.components = tuple(components)

    def negotiate(
        self, demand: Mapping[str, Any], offer: dict[str, Any], ctx: NegotiationContext
    ) -> NegotiationResult:
        current = dict(offer)
        notes: list[str] = []
        for component in self.components:
            result = component.negotiate(demand, dict(current), ctx)
            if result.verdict is Verdict.REJECT:
                return result
            current = result.offer
            if result.verdict is Verdict.COUNTER:
                notes.append(f"{component.name}: {result.reason}")
        if notes:
            return NegotiationResult.counter(current, "; ".join(notes))
        return NegotiationResult.accept(current)


def default_negotiator(config: ProviderConfig) -> CompositeNegotiator:
    """The chain ``golem provider run`` uses, configured from ``config``."""
    return CompositeNegotiator(
        [
            DenyList(config.deny_list),
            Subnet(config.subnet),
            PaymentPlatform([config.payment_platform]),
            MaxAgreements(config.max_concurrent_agreements),
            PaymentTerms(
                debit_note_interval=Bounds(
                    config.min_debit_note_interval_sec, config.max_debit_note_interval_sec
                ),
                payment_timeout=Bounds(config.min_payment_timeout_sec, config.max_payment_timeout_sec),
                accept_timeout=Bounds(
                    config.min_debit_note_accept_timeout_sec, config.max_debit_note_accept_timeout_sec
                ),
            ),
            ExpirationWindow(
                config.min_agreement_expiration_sec,
                config.max_agreement_expiration_sec,
                config.max_agreement_expiration_with_payments_sec,
            ),
        ]
    )
