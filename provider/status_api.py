"""The provider's read-only status API, mounted at ``/provider/v1`` (default 127.0.0.1:7466).

``GET /offers`` (what is published), ``GET /agreements`` (optionally ``?state=Approved``),
``GET /agreements/{agreementId}`` (with the termination reason and its code once ended),
``GET /activities`` (exe units run for the agreements: live ones with their state, finished ones
with their final usage and cost; filter ``agreementId``), ``GET /documents`` (debit notes and
invoices issued, with status, amount and due date; filters ``kind``, ``agreementId``, ``status``),
``GET /earnings`` (totals issued, accepted and settled per payment platform), ``GET /health``.
Handlers read a :class:`ProviderView` (the daemon implements it) and serialise response models;
:func:`error_middleware` is the one place errors become HTTP statuses.
The OpenAPI document is generated from :data:`ROUTES` and committed as ``provider/openapi.json``::

    python -m provider.status_api          # rewrite provider/openapi.json
    python -m provider.status_api --check  # exit 1 if the committed file is stale
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import BaseModel, Field, ValidationError

from exeunits.script import ActivityState
from market.core.wire import RequestModel, WireModel
from market.hub.api_models import ErrorMessage, Timestamp
from market.hub.openapi import Route, build_document, document_cli, render
from market.protocol.messages import AgreementState
from payments.models import Amount, DocumentStatus

log = logging.getLogger(__name__)

API_PREFIX = "/provider/v1"
API_VERSION = "1"
COMMITTED_PATH = Path(__file__).with_name("openapi.json")


# --- models -------------------------------------------------------------------------------------------


class PublishedOffer(WireModel):
    """An offer this provider has on the market."""

    subscription_id: str
    runtime: str
    preset: str
    properties: dict[str, Any] = Field(description="Flat property map (dotted names).")
    constraints: str
    expiration: Timestamp


class AgreementInfo(WireModel):
    """An agreement this provider was offered, in the provider's view."""

    agreement_id: str
    state: AgreementState
    requestor_id: str
    runtime: str | None
    valid_to: Timestamp
    approved_date: Timestamp | None
    created_at: Timestamp
    updated_at: Timestamp
    reason: dict[str, Any] | None = Field(description="Why it was rejected or ended, when it was.")
    termination_code: str | None = Field(
        description=(
            "The terminator's code from the reason (`golem.provider.code`, e.g. `DebitNotesDeadline`, "
            "or `golem.requestor.code`, e.g. `Success`), once Terminated."
        )
    )
    terminator: Literal["Requestor", "Provider"] | None
    proposed_signature: str | None = Field(description="The requestor's signature.")
    approved_signature: str | None = Field(description="This provider's signature.")
    demand_properties: dict[str, Any]
    offer_properties: dict[str, Any]


class ActivityInfo(WireModel):
    """An activity (one exe unit) run for one of this provider's agreements.

    Live activities come from the exe-unit host; once an activity has finished, its final usage and
    cost (what the invoice sums) come from the agreement store and stay after a restart."""

    activity_id: str
    agreement_id: str
    state: ActivityState
    duration_sec: float = Field(description="Wall time so far, or in all once finished.")
    cpu_sec: float | None = Field(description="CPU seconds used; known once finished.")
    cost: Amount | None = Field(description="Its price under the agreed pricing; known once finished.")
    ended_at: Timestamp | None


DocumentKindName = Literal["DebitNote", "Invoice"]


class DocumentInfo(WireModel):
    """A debit note or invoice this provider issued, as it stands now."""

    kind: DocumentKindName
    document_id: str
    agreement_id: str
    activity_ids: list[str] = Field(description="The debit note's activity, or the invoice's activities.")
    status: DocumentStatus
    amount: Amount = Field(description="`totalAmountDue` (cumulative, per activity) or the invoice amount.")
    platform: str
    issued_at: Timestamp
    payment_due_date: Timestamp | None = Field(
        description="When it must be paid; on debit notes only when mid-agreement payments are on."
    )


class PlatformEarnings(WireModel):
    """What this provider billed on one payment platform, and how much of it came through.

    Per agreement the invoice counts once it exists; before that, each activity's latest debit note
    (they are cumulative)."""

    platform: str
    agreements: int = Field(description="Agreements with at least one document on this platform.")
    issued: Amount
    accepted: Amount = Field(description="Of that, what the requestors accepted (committed to pay).")
    settled: Amount = Field(description="Of that, what was paid and verified.")


class Health(WireModel):
    status: Literal["ok", "degraded"] = Field(description="`degraded` while the market session is down.")
    node_id: str
    node_name: str
    market_connected: bool
    offers: int
    active_agreements: int
    max_agreements: int
    started_at: Timestamp


StateName = Literal["Proposal", "Pending", "Approved", "Rejected", "Cancelled", "Expired", "Terminated"]


class AgreementQuery(RequestModel):
    # A Literal, not the enum: query parameters are documented inline, without $defs.
    state: StateName | None = Field(default=None, description="Only agreements in this state.")


class ActivityQuery(RequestModel):
    agreement_id: str | None = Field(default=None, description="Only this agreement's activities.")


StatusName = Literal["ISSUED", "RECEIVED", "ACCEPTED", "REJECTED", "FAILED", "SETTLED", "CANCELLED"]


class DocumentQuery(RequestModel):
    kind: DocumentKindName | None = Field(default=None, description="Only debit notes, or only invoices.")
    agreement_id: str | None = Field(default=None, description="Only this agreement's documents.")
    status: StatusName | None = Field(default=None, description="Only documents in this status.")


class ProviderView(Protocol):
    """What the status API reads; :class:`provider.daemon.ProviderDaemon` implements it."""

    def published_offers(self) -> list[PublishedOffer]: ...

    def agreement_infos(self, state: AgreementState | None = None) -> list[AgreementInfo]: ...

    def activity_infos(self) -> list[ActivityInfo]: ...

    def documents(self) -> list[DocumentInfo]: ...

    def earnings(self) -> list[PlatformEarnings]: ...

    def health(self) -> Health: ...


class NotFoundError(Exception):
    """A requested object does not exist (404 at this edge)."""


VIEW_KEY: web.AppKey[ProviderView] = web.AppKey("provider_view", ProviderView)


def agreement_info(
    agreement_id: str,
    state: AgreementState,
    requestor_id: str,
    runtime: str | None,
    valid_to: datetime,
    approved_date: datetime | None,
    created_at: datetime,
    updated_at: datetime,
    reason: dict[str, Any] | None,
    terminator: str | None,
    proposed_signature: str | None,
    approved_signature: str | None,
    demand_properties: dict[str, Any],
    offer_properties: dict[str, Any],
) -> AgreementInfo:
    fields = dict(locals())
    code = None
    if state is AgreementState.TERMINATED and reason is not None:
        raw = reason.get("golem.provider.code", reason.get("golem.requestor.code"))
        code = str(raw) if raw is not None else None
    return AgreementInfo.model_validate({**fields, "termination_code": code})


# --- handlers -----------------------------------------------------------------------------------------


def _json(body: BaseModel | Sequence[BaseModel]) -> web.Response:
    if isinstance(body, BaseModel):
        data: Any = body.model_dump(mode="json", by_alias=True)
    else:
        data = [item.model_dump(mode="json", by_alias=True) for item in body]
    return web.json_response(data)


async def list_offers(request: web.Request) -> web.Response:
    return _json(request.app[VIEW_KEY].published_offers())


async def list_agreements(request: web.Request) -> web.Response:
    try:
        query = AgreementQuery.model_validate(dict(request.query))
    except ValidationError as exc:
        raise web.HTTPBadRequest(text=f"invalid query: {exc.errors()[0]['msg']}") from exc
    state = AgreementState(query.state) if query.state else None
    return _json(request.app[VIEW_KEY].agreement_infos(state))


async def get_agreement(request: web.Request) -> web.Response:
    agreement_id = request.match_info["agreementId"]
    for info in request.app[VIEW_KEY].agreement_infos():
        if info.agreement_id == agreement_id:
            return _json(info)
    raise NotFoundError(f"no agreement {agreement_id}")


async def list_activities(request: web.Request) -> web.Response:
    try:
        query = ActivityQuery.model_validate(dict(request.query))
    except ValidationError as exc:
        raise web.HTTPBadRequest(text=f"invalid query: {exc.errors()[0]['msg']}") from exc
    found = [
        a
        for a in request.app[VIEW_KEY].activity_infos()
        if query.agreement_id is None or a.agreement_id == query.agreement_id
    ]
    return _json(found)


async def list_documents(request: web.Request) -> web.Response:
    try:
        query = DocumentQuery.model_validate(dict(request.query))
    except ValidationError as exc:
        raise web.HTTPBadRequest(text=f"invalid query: {exc.errors()[0]['msg']}") from exc
    found = [
        d
        for d in request.app[VIEW_KEY].documents()
        if (query.kind is None or d.kind == query.kind)
        and (query.agreement_id is None or d.agreement_id == query.agreement_id)
        and (query.status is None or d.status.value == query.status)
    ]
    return _json(found)


async def get_earnings(request: web.Request) -> web.Response:
    return _json(request.app[VIEW_KEY].earnings())


async def get_health(request: web.Request) -> web.Response:
    return _json(request.app[VIEW_KEY].health())


async def get_openapi(request: web.Request) -> web.Response:
    return web.Response(text=_openapi_text(), content_type="application/json")


ROUTES: tuple[Route, ...] = (
    Route("GET", "/offers", "listOffers", "Offers published now", list_offers, list[PublishedOffer]),
    Route(
        "GET",
        "/agreements",
        "listAgreements",
        "Agreements this provider was offered, oldest first",
        list_agreements,
        list[AgreementInfo],
        query=AgreementQuery,
        errors=(400,),
    ),
    Route(
        "GET",
        "/agreements/{agreementId}",
        "getAgreement",
        "One agreement",
        get_agreement,
        AgreementInfo,
        errors=(404,),
    ),
    Route(
        "GET",
        "/activities",
        "listActivities",
        "Activities run for this provider's agreements: finished ones (oldest first), then live ones",
        list_activities,
        list[ActivityInfo],
        query=ActivityQuery,
        errors=(400,),
    ),
    Route(
        "GET",
        "/documents",
        "listDocuments",
        "Debit notes and invoices this provider issued, oldest first",
        list_documents,
        list[DocumentInfo],
        query=DocumentQuery,
        errors=(400,),
    ),
    Route(
        "GET",
        "/earnings",
        "getEarnings",
        "Totals issued, accepted and settled per payment platform",
        get_earnings,
        list[PlatformEarnings],
    ),
    Route("GET", "/health", "getHealth", "Liveness and market session state", get_health, Health),
    Route("GET", "/openapi.json", "getOpenApi", "This document", get_openapi, dict[str, Any]),
)


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of this API (what ``provider/openapi.json`` holds)."""
    return build_document(
        ROUTES,
        title="Golem provider status API",
        version=API_VERSION,
        server_url=API_PREFIX,
        error_model=ErrorMessage,
        description=(
            "Read-only view of a provider daemon: published offers, agreements with their state, "
            "signatures and termination reason, the activities run, the debit notes and invoices "
            'issued, earnings per payment platform, health. Every error body is `{"message": ...}`.'
        ),
    )


@functools.cache
def _openapi_text() -> str:
    return render(openapi_document())


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure becomes a JSON ``{"message": ...}`` with its status."""
    try:
        return await handler(request)
    except NotFoundError as exc:
        return web.json_response(ErrorMessage(message=str(exc)).to_wire(), status=404)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = exc.text if exc.text and exc.text != f"{exc.status}: {exc.reason}" else exc.reason
        return web.json_response(ErrorMessage(message=message).to_wire(), status=exc.status)
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return web.json_response(ErrorMessage(message="internal error").to_wire(), status=500)


def build_status_api(view: ProviderView) -> web.Application:
    """The ``/provider/v1`` sub-application over ``view``; mount it with ``app.add_subapp``."""
    app = web.Application(middlewares=[error_middleware])
    app[VIEW_KEY] = view
    for route in ROUTES:
        app.router.add_route(route.method, route.path, route.handler, name=route.operation_id)
    return app


def main(argv: Sequence[str] | None = None) -> int:
    """Write (or ``--check``) the committed OpenAPI document of the provider status API."""
    return document_cli("provider.status_api", _openapi_text(), COMMITTED_PATH, argv)


if __name__ == "__main__":
    sys.exit(main())
