"""Wire models of the market node's REST API (``/market/v1``).

Shapes only, no behaviour: :mod:`market.hub.api` fills them from the market, and
:mod:`market.hub.openapi` turns them into the published OpenAPI document. Query models are
:class:`~market.core.wire.RequestModel` subclasses, so a misspelt parameter is an error rather than a
silently ignored option.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import Field, PlainSerializer, WithJsonSchema

from market.core.clock import rfc3339
from market.core.wire import RequestModel, WireModel

MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 50


Timestamp = Annotated[
    datetime,
    PlainSerializer(rfc3339, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
"""A timezone-aware moment, written as RFC 3339 in UTC with a ``Z`` suffix."""


# --- queries ----------------------------------------------------------------------------------------


class PageQuery(RequestModel):
    """Paging of a list endpoint."""

    offset: int = Field(default=0, ge=0, description="How many items to skip.")
    limit: int = Field(
        default=DEFAULT_PAGE_SIZE,
        ge=1,
        le=MAX_PAGE_SIZE,
        description=f"How many items to return at most (1 to {MAX_PAGE_SIZE}).",
    )


class OfferQuery(PageQuery):
    """Paging and filtering of the offer list."""

    constraint: str | None = Field(
        default=None,
        description=(
            "A constraint in Golem's LDAP-like syntax, e.g. `(golem.runtime.name=vm)`. Only offers "
            "whose properties make it true are listed. Absent or blank: every offer."
        ),
    )


# --- responses --------------------------------------------------------------------------------------


class ErrorMessage(WireModel):
    """The body of every error response."""

    message: str


class Offer(WireModel):
    """A live offer subscription, as the market node holds it."""

    offer_id: str
    provider_id: str
    properties: dict[str, Any] = Field(description="Flat property map (dotted names).")
    constraints: str
    timestamp: Timestamp = Field(description="When the offer was published.")
    expiration: Timestamp


class Demand(WireModel):
    """A live demand subscription, as the market node holds it."""

    demand_id: str
    requestor_id: str
    properties: dict[str, Any] = Field(description="Flat property map (dotted names).")
    constraints: str
    timestamp: Timestamp = Field(description="When the demand was published.")
    expiration: Timestamp


class Page(WireModel):
    """Common fields of a page of a list."""

    total: int = Field(description="How many items match, over all pages.")
    offset: int
    limit: int


class OfferPage(Page):
    items: list[Offer]


class DemandPage(Page):
    items: list[Demand]


class ConnectedNode(WireModel):
    """A node with a live, authenticated WebSocket session."""

    node_id: str
    name: str
    connected_since: Timestamp


class AgreementSummary(WireModel):
    """An agreement the market node carried, without its offer and demand: who, what state, when."""

    agreement_id: str
    provider_id: str
    requestor_id: str
    state: str
    timestamp: Timestamp = Field(description="When the agreement was created.")
    valid_to: Timestamp
    approved_date: Timestamp | None = None


class AgreementPage(Page):
    items: list[AgreementSummary]


class StateCounts(WireModel):
    """Objects per state: `live` are held now, `total` ever entered that state since the node started."""

    live: dict[str, int]
    total: dict[str, int]


class LatencySummary(WireModel):
    """Nearest-rank percentiles of recent negotiation latencies (first proposal to approval)."""

    count: int = Field(description="How many latencies the window holds.")
    p50: float | None = Field(description="Median in milliseconds; null when there are none.")
    p90: float | None
    p99: float | None


class MarketStats(WireModel):
    """A snapshot of the market node's activity."""

    offers: int
    demands: int
    connected_nodes: int
    proposals: StateCounts
    agreements: StateCounts
    negotiation_latency_ms: LatencySummary
