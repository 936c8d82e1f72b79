"""Requestors this provider refuses to work for, by node id."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from provider.negotiator.base import NegotiationContext, NegotiationResult


class DenyList:
    name = "deny-list"

    def __init__(self, denied: Iterable[str]) -> None:
        self.denied = frozenset(node.lower() for node in denied)

    def negotiate(
        self, demand: Mapping[str, Any], offer: dict[str, Any], ctx: NegotiationContext
    ) -> NegotiationResult:
        if ctx.requestor_id.lower() in self.denied:
            return NegotiationResult.reject("this provider does not accept work from this requestor")
        return NegotiationResult.accept(offer)
