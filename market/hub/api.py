"""The market node's read-only REST API, mounted at ``/market/v1``.

For consoles and integrators: live offers (filterable by a constraint) and demands, connected nodes,
recent agreements and activity statistics. Handlers parse the query into a model, read the market,
and serialise a response model; :func:`error_middleware` is the one place where errors become HTTP
statuses. The routes are declared once in :data:`ROUTES`, which both :func:`build_api` and the
OpenAPI generator (:mod:`market.hub.openapi`) read.
"""

from __future__ import annotations

import functools
import logging
import secrets
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import BaseModel

from market.core.logging import correlated
from market.hub.api_models import (
    AgreementPage,
    AgreementSummary,
    ConnectedNode,
    Demand,
    DemandPage,
    ErrorMessage,
    LatencySummary,
    MarketStats,
    Offer,
    OfferPage,
    OfferQuery,
    PageQuery,
    StateCounts,
)
from market.hub.market import Market, Subscription, SubscriptionKind
from market.hub.openapi import Route, build_document, render
from market.hub.registry_api import ROUTES as REGISTRY_ROUTES
from market.props import ConstraintSyntaxError, parse_constraints
from market.protocol.errors import BadRequestError, ErrorCode, MarketError, NotFoundError
from market.protocol.messages import AgreementState, ProposalState
from market.rest import QueryError, http_exception_response, parse_query

if TYPE_CHECKING:
    from market.hub.server import MarketNode

log = logging.getLogger(__name__)

API_PREFIX = "/market/v1"
API_VERSION = "1"

NODE_KEY: web.AppKey[MarketNode] = web.AppKey("market_node")

HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.BAD_REQUEST: 400,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.CONFLICT: 409,
    ErrorCode.GONE: 410,
    ErrorCode.FRAME_TOO_LARGE: 413,
    ErrorCode.LIMIT_EXCEEDED: 429,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.NOT_CONNECTED: 503,
    ErrorCode.TIMEOUT: 504,
    ErrorCode.INTERNAL: 500,
}
"""The HTTP status of each market error code; the REST edge's only mapping of domain errors."""

LATENCY_PERCENTILES = (50, 90, 99)

_Q = TypeVar("_Q", bound=BaseModel)


# --- reading the market -----------------------------------------------------------------------------


def offer_of(sub: Subscription) -> Offer:
    return Offer(
        offer_id=sub.subscription_id,
        provider_id=sub.owner,
        properties=sub.properties,
        constraints=sub.constraints,
        timestamp=sub.created,
        expiration=sub.expiration,
    )


def demand_of(sub: Subscription) -> Demand:
    return Demand(
        demand_id=sub.subscription_id,
        requestor_id=sub.owner,
        properties=sub.properties,
        constraints=sub.constraints,
        timestamp=sub.created,
        expiration=sub.expiration,
    )


def offers_matching(market: Market, constraint: str | None) -> list[Subscription]:
    """Live offers whose properties make ``constraint`` true, oldest first; all of them if it is blank.

    Only the offer's properties are judged: the offer's own constraints (what it asks of a demand) are
    not, because a query has no properties for them to judge.
    """
    if constraint is None or not constraint.strip():
        return market.offers()
    try:
        parsed = parse_constraints(constraint)
    except ConstraintSyntaxError as exc:
        raise BadRequestError(f"invalid constraint: {exc}") from exc
    subscriptions = market.subscriptions
    return [subscriptions[offer_id] for offer_id in market.index.offers_satisfying(parsed)]


def nearest_rank(ordered: Sequence[float], percent: int) -> float | None:
    """The nearest-rank percentile of sorted values: the smallest value with ``percent`` % at or below it.

    Always one of the observed values (no interpolation); ``None`` for no values. For the values
    1..100, p50 is 50, p90 is 90 and p99 is 99.
    """
    if not ordered:
        return None
    rank = max(1, -(-percent * len(ordered) // 100))  # ceil without float rounding
    return ordered[rank - 1]


def _state_counts(states: Iterable[str], live: dict[str, int], total: dict[str, int]) -> StateCounts:
    # Every state is listed, zeros included, so a console sees the same keys from the first request.
    names = [str(s) for s in states]
    live_by_name = {str(k): v for k, v in live.items()}
    total_by_name = {str(k): v for k, v in total.items()}
    extra = sorted((set(live_by_name) | set(total_by_name)) - set(names))
    return StateCounts(
        live={name: live_by_name.get(name, 0) for name in [*names, *extra]},
        total={name: total_by_name.get(name, 0) for name in [*names, *extra]},
    )


def market_stats(node: MarketNode) -> MarketStats:
    market = node.market
    live = market.live_counts()
    latencies = sorted(market.negotiation_latency_ms)
    p50, p90, p99 = (nearest_rank(latencies, p) for p in LATENCY_PERCENTILES)
    return MarketStats(
        offers=live["offers"],
        demands=live["demands"],
        connected_nodes=len(node.sessions),
        proposals=_state_counts(ProposalState, live["proposals"], market.proposal_counts),
        agreements=_state_counts(AgreementState, live["agreements"], market.agreement_counts),
        negotiation_latency_ms=LatencySummary(count=len(latencies), p50=p50, p90=p90, p99=p99),
    )


# --- handlers ---------------------------------------------------------------------------------------


def _query(request: web.Request, model: type[_Q]) -> _Q:
    try:
        return parse_query(request, model)
    except QueryError as exc:
        raise BadRequestError(str(exc)) from exc


def _json(body: BaseModel | Sequence[BaseModel]) -> web.Response:
    # None fields are kept: the document promises e.g. `"p50": null`, not a missing key.
    if isinstance(body, BaseModel):
        data: Any = body.model_dump(mode="json", by_alias=True)
    else:
        data = [item.model_dump(mode="json", by_alias=True) for item in body]
    return web.json_response(data)


async def list_offers(request: web.Request) -> web.Response:
    query = _query(request, OfferQuery)
    found = offers_matching(request.app[NODE_KEY].market, query.constraint)
    window = found[query.offset : query.offset + query.limit]
    return _json(
        OfferPage(
            items=[offer_of(s) for s in window], total=len(found), offset=query.offset, limit=query.limit
        )
    )


async def get_offer(request: web.Request) -> web.Response:
    offer_id = request.match_info["offerId"]
    sub = request.app[NODE_KEY].market.subscriptions.get(offer_id)
    if sub is None or sub.kind is not SubscriptionKind.OFFER:
        raise NotFoundError(f"no live offer {offer_id}")
    return _json(offer_of(sub))


async def list_demands(request: web.Request) -> web.Response:
    query = _query(request, PageQuery)
    found = request.app[NODE_KEY].market.demands()
    window = found[query.offset : query.offset + query.limit]
    return _json(
        DemandPage(
            items=[demand_of(s) for s in window], total=len(found), offset=query.offset, limit=query.limit
        )
    )


async def list_nodes(request: web.Request) -> web.Response:
    nodes = request.app[NODE_KEY].nodes()
    return _json(
        [ConnectedNode(node_id=n.node_id, name=n.name, connected_since=n.connected_since) for n in nodes]
    )


async def list_agreements(request: web.Request) -> web.Response:
    query = _query(request, PageQuery)
    records = sorted(
        request.app[NODE_KEY].market.agreements.values(),
        key=lambda r: r.agreement.timestamp,
        reverse=True,
    )
    window = records[query.offset : query.offset + query.limit]
    return _json(
        AgreementPage(
            items=[
                AgreementSummary(
                    agreement_id=r.agreement.agreement_id,
                    provider_id=r.agreement.offer.provider_id,
                    requestor_id=r.agreement.demand.requestor_id,
                    state=r.agreement.state.value,
                    timestamp=r.agreement.timestamp,
                    valid_to=r.agreement.valid_to,
                    approved_date=r.agreement.approved_date,
                )
                for r in window
            ],
            total=len(records),
            offset=query.offset,
            limit=query.limit,
        )
    )


async def get_stats(request: web.Request) -> web.Response:
    return _json(market_stats(request.app[NODE_KEY]))


async def get_openapi(request: web.Request) -> web.Response:
    # The same bytes as the committed market/hub/openapi.json (the contract test sees to that).
    return web.Response(text=_openapi_text(), content_type="application/json")


ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        "/offers",
        "listOffers",
        "List live offers, optionally filtered by a constraint",
        list_offers,
        OfferPage,
        query=OfferQuery,
        errors=(400,),
        description="Oldest first. A constraint that does not parse is answered 400, naming the position.",
    ),
    Route("GET", "/offers/{offerId}", "getOffer", "Get one live offer", get_offer, Offer, errors=(404,)),
    Route(
        "GET",
        "/demands",
        "listDemands",
        "List live demands",
        list_demands,
        DemandPage,
        query=PageQuery,
        errors=(400,),
    ),
    Route("GET", "/nodes", "listNodes", "List nodes with a live session", list_nodes, list[ConnectedNode]),
    Route(
        "GET",
        "/agreements",
        "listAgreements",
        "List agreements the node holds, newest first",
        list_agreements,
        AgreementPage,
        query=PageQuery,
        errors=(400,),
        description=(
            "Agreements being negotiated or running, and finished ones for a few minutes after they "
            "end. Parties, state and times only; the offer and demand stay with the parties."
        ),
    ),
    Route("GET", "/stats", "getStats", "Counts of live and past market objects", get_stats, MarketStats),
    Route("GET", "/openapi.json", "getOpenApi", "This document", get_openapi, dict[str, Any]),
)


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of this API (what ``market/hub/openapi.json`` holds), with the package
    registry's routes, which the node serves outside ``/market/v1`` (each names its own server)."""
    return build_document(
        (*ROUTES, *REGISTRY_ROUTES),
        title="Golem market node API",
        version=API_VERSION,
        server_url=API_PREFIX,
        error_model=ErrorMessage,
        description=(
            "Read-only view of a market node: live offers (filterable by a constraint) and demands, "
            "connected nodes, recent agreements and activity statistics; and the node's package registry "
            "(`/packages`, `/v1/image/info`, served from the root). "
            'Every error body is `{"message": ...}`.'
        ),
    )


@functools.cache
def _openapi_text() -> str:
    return render(openapi_document())


# --- errors -----------------------------------------------------------------------------------------


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(ErrorMessage(message=message).to_wire(), status=status, headers=headers)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every failure into a JSON ``{"message": ...}`` with the status its kind calls for."""
    with correlated(f"api:{secrets.token_hex(4)}"):
        try:
            response: web.StreamResponse = await handler(request)
            return response
        except MarketError as exc:
            status = HTTP_STATUS.get(exc.code, 500)
            if status >= 500:
                log.error("%s %s failed: %s", request.method, request.path, exc)
                return _error(status, "internal error" if status == 500 else str(exc))
            return _error(status, str(exc))
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return http_exception_response(exc)
        except Exception:
            log.exception("%s %s failed", request.method, request.path)
            return _error(500, "internal error")


def build_api(node: MarketNode) -> web.Application:
    """The ``/market/v1`` sub-application over ``node``; mount it with ``app.add_subapp``."""
    app = web.Application(middlewares=[error_middleware])
    app[NODE_KEY] = node
    for route in ROUTES:
        app.router.add_route(route.method, route.path, route.handler, name=route.operation_id)
    return app
