"""The negotiator component protocol and its result type."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol


class Stage(StrEnum):
    """What is being judged."""

    PROPOSAL = "proposal"
    """A requestor's counter-proposal: we answer with a Draft or a rejection."""
    AGREEMENT = "agreement"
    """An agreement the requestor signed: we approve it only if every component accepts."""


class Verdict(StrEnum):
    ACCEPT = "accept"
    """The proposal is acceptable with our offer as it stands."""
    COUNTER = "counter"
    """Negotiation goes on: our offer was adjusted and differs from what the requestor asked."""
    REJECT = "reject"
    """No deal."""


@dataclass(frozen=True)
class NegotiationContext:
    """What a component may know beyond the two property sets."""

    requestor_id: str
    now: datetime
    stage: Stage
    active_agreements: int
    """Approved agreements plus those being approved right now (capacity already promised)."""


@dataclass(frozen=True)
class NegotiationResult:
    verdict: Verdict
    offer: dict[str, Any] = field(default_factory=dict)
    """Our (possibly adjusted) offer properties; empty for a rejection."""
    reason: str = ""
    """Why: shown to the requestor for a rejection, logged for a counter."""
    final: bool = True
    """For a rejection: would the same requestor be rejected again (as opposed to "not now")?"""

    @classmethod
    def accept(cls, offer: dict[str, Any]) -> NegotiationResult:
        return cls(Verdict.ACCEPT, offer)

    @classmethod
    def counter(cls, offer: dict[str, Any], reason: str) -> NegotiationResult:
        return cls(Verdict.COUNTER, offer, reason)

    @classmethod
    def reject(cls, reason: str, *, final: bool = True) -> NegotiationResult:
        return cls(Verdict.REJECT, {}, reason, final)


class NegotiatorComponent(Protocol):
    """One concern of the negotiation (subnet, price, capacity, ...); pure and synchronous."""

    name: str

    def negotiate(
        self, demand: Mapping[str, Any], offer: dict[str, Any], ctx: NegotiationContext
    ) -> NegotiationResult:
        """Judge the requestor's flat ``demand`` properties against our ``offer`` (a private copy the
        component may return modified)."""
        ...
