"""REST handlers of yagna's Market API, requestor side, mounted at ``/market-api/v1``.

Thin by design: each handler parses its path, query and body into models, calls one
:class:`~requestor.market_service.RequestorMarketService` method and serialises the answer in
yagna's shapes (ids as quoted JSON strings, 201 for a new demand, 204 for unsubscribe, reject,
confirm and an approved wait, 200 with an empty body for cancel and terminate). Errors are left to
the root app's error middleware. :data:`ROUTES` is the single declaration both the app and the
generated OpenAPI document (``requestor/openapi/market.json``) are built from.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import AwareDatetime, Field, field_validator

from market.api import models as api
from market.core.wire import WireModel
from market.hub.openapi import Route, build_document, document_cli, render
from requestor.app import (
    json_id,
    json_model,
    read_json,
    read_optional_json,
    read_query,
    register_error_status,
)
from requestor.market_service import ApprovalTimeoutError, RequestorMarketService

API_PREFIX = "/market-api/v1"
API_VERSION = "1"
COMMITTED_PATH = Path(__file__).parent / "openapi" / "market.json"

MARKET_SERVICE: web.AppKey[RequestorMarketService] = web.AppKey("market_service", RequestorMarketService)

register_error_status(ApprovalTimeoutError, 408)


# --- query models (unknown parameters are ignored, as yagna does) ---------------------------------------


class EventsQuery(WireModel):
    timeout: float = Field(default=5.0, ge=0, description="Seconds to wait for a first event.")
    max_events: int = Field(default=10, ge=1, le=100, description="At most this many events.")


class WaitQuery(WireModel):
    timeout: float = Field(default=5.0, ge=0, description="Seconds to wait for the provider's answer.")
    app_session_id: str | None = None


class ConfirmQuery(WireModel):
    app_session_id: str | None = None


class AgreementListQuery(WireModel):
    # A string checked against the enum, not a Literal: typing caches Literals order-insensitively,
    # so a Literal's schema would list its values in whichever order another module spelled them.
    state: str | None = Field(default=None, json_schema_extra={"enum": [s.value for s in api.AgreementState]})

    @field_validator("state")
    @classmethod
    def _known_state(cls, value: str | None) -> str | None:
        if value is not None and value not in api.AgreementState.__members__.values():
            raise ValueError(f"not an agreement state: {value!r}")
        return value

    before_date: AwareDatetime | None = None
    after_date: AwareDatetime | None = None
    app_session_id: str | None = None

    @field_validator("before_date", "after_date", mode="before")
    @classmethod
    def _plus_sign(cls, value: Any) -> Any:
        return value.replace(" ", "+") if isinstance(value, str) else value


class AgreementEventsQuery(EventsQuery):
    after_timestamp: AwareDatetime | None = Field(
        default=None, description="Only events strictly after this RFC 3339 instant (with offset)."
    )
    app_session_id: str | None = None

    @field_validator("after_timestamp", mode="before")
    @classmethod
    def _plus_sign(cls, value: Any) -> Any:
        # An unencoded "+00:00" arrives as " 00:00".
        return value.replace(" ", "+") if isinstance(value, str) else value


# --- handlers -------------------------------------------------------------------------------------


def _service(request: web.Request) -> RequestorMarketService:
    return request.config_dict[MARKET_SERVICE]


def _empty(status: int = 204) -> web.Response:
    return web.Response(status=status)


async def subscribe_demand(request: web.Request) -> web.Response:
    body = await read_json(request, api.DemandOfferBase)
    return json_id(await _service(request).subscribe_demand(body), status=201)


async def get_demands(request: web.Request) -> web.Response:
    return json_model(_service(request).demands())


async def unsubscribe_demand(request: web.Request) -> web.Response:
    await _service(request).unsubscribe_demand(request.match_info["subscriptionId"])
    return _empty()


async def collect_offers(request: web.Request) -> web.Response:
    query = read_query(request, EventsQuery)
    events = await _service(request).collect_events(
        request.match_info["subscriptionId"], query.timeout, query.max_events
    )
    return json_model(events)


async def counter_proposal_demand(request: web.Request) -> web.Response:
    body = await read_json(request, api.DemandOfferBase)
    new_id = await _service(request).counter_proposal(
        request.match_info["subscriptionId"], request.match_info["proposalId"], body
    )
    return json_id(new_id)


async def get_proposal_offer(request: web.Request) -> web.Response:
    proposal = _service(request).get_proposal(
        request.match_info["subscriptionId"], request.match_info["proposalId"]
    )
    return json_model(proposal)


async def reject_proposal_offer(request: web.Request) -> web.Response:
    reason = await read_optional_json(request, api.Reason)
    await _service(request).reject_proposal(
        request.match_info["subscriptionId"], request.match_info["proposalId"], reason
    )
    return _empty()


async def create_agreement(request: web.Request) -> web.Response:
    body = await read_json(request, api.AgreementProposal)
    return json_id(await _service(request).create_agreement(body))


async def list_agreements(request: web.Request) -> web.Response:
    query = read_query(request, AgreementListQuery)
    state = api.AgreementState(query.state) if query.state else None
    return json_model(_service(request).list_agreements(state, query.before_date, query.after_date))


async def get_agreement(request: web.Request) -> web.Response:
    return json_model(_service(request).get_agreement(request.match_info["agreementId"]))


async def confirm_agreement(request: web.Request) -> web.Response:
    read_query(request, ConfirmQuery)
    await _service(request).confirm_agreement(request.match_info["agreementId"])
    return _empty()


async def wait_for_approval(request: web.Request) -> web.Response:
    query = read_query(request, WaitQuery)
    await _service(request).wait_for_approval(request.match_info["agreementId"], query.timeout)
    return _empty()


async def cancel_agreement(request: web.Request) -> web.Response:
    reason = await read_optional_json(request, api.Reason)
    await _service(request).cancel_agreement(request.match_info["agreementId"], reason)
    return _empty(200)


async def terminate_agreement(request: web.Request) -> web.Response:
    reason = await read_optional_json(request, api.Reason)
    await _service(request).terminate_agreement(request.match_info["agreementId"], reason)
    return _empty(200)


async def get_terminate_reason(request: web.Request) -> web.Response:
    return json_model(_service(request).termination_reason(request.match_info["agreementId"]))


async def collect_agreement_events(request: web.Request) -> web.Response:
    query = read_query(request, AgreementEventsQuery)
    events = await _service(request).collect_agreement_events(
        query.after_timestamp, query.timeout, query.max_events
    )
    return json_model(list(events))


async def get_openapi(request: web.Request) -> web.Response:
    return web.Response(text=_openapi_text(), content_type="application/json")


ROUTES: tuple[Route, ...] = (
    Route(
        "POST",
        "/demands",
        "subscribeDemand",
        "Publish a demand",
        subscribe_demand,
        str,
        errors=(400,),
        description="Answers 201 with the subscription id as a JSON string. Properties are flattened.",
    ),
    Route("GET", "/demands", "getDemands", "List this node's live demands", get_demands, list[api.Demand]),
    Route(
        "DELETE",
        "/demands/{subscriptionId}",
        "unsubscribeDemand",
        "Unsubscribe a demand",
        unsubscribe_demand,
        None,
        errors=(404, 410),
        description="Answers 204.",
    ),
    Route(
        "GET",
        "/demands/{subscriptionId}/events",
        "collectOffers",
        "Long-poll negotiation events",
        collect_offers,
        list[api.Event],
        query=EventsQuery,
        errors=(400, 404),
        description="Waits until an event exists or `timeout` passes, then answers (possibly `[]`). "
        "404 once the demand is unknown, unsubscribed or expired.",
    ),
    Route(
        "POST",
        "/demands/{subscriptionId}/proposals/{proposalId}",
        "counterProposalDemand",
        "Counter a provider's proposal",
        counter_proposal_demand,
        str,
        errors=(400, 404, 410),
        description="Answers the new proposal's id as a JSON string; 410 if already countered, 400 if "
        "the counter-proposal does not match.",
    ),
    Route(
        "GET",
        "/demands/{subscriptionId}/proposals/{proposalId}",
        "getProposalOffer",
        "Get one proposal",
        get_proposal_offer,
        api.Proposal,
        errors=(404,),
    ),
    Route(
        "POST",
        "/demands/{subscriptionId}/proposals/{proposalId}/reject",
        "rejectProposalOffer",
        "Reject a provider's proposal",
        reject_proposal_offer,
        None,
        errors=(400, 404, 410),
        description="Body: an optional `Reason`. Answers 204.",
    ),
    Route(
        "POST",
        "/agreements",
        "createAgreement",
        "Create an agreement from the provider's Draft",
        create_agreement,
        str,
        errors=(400, 404, 409, 410),
        description="Body: `AgreementProposal`. Answers the agreement id as a JSON string.",
    ),
    Route(
        "GET",
        "/agreements",
        "listAgreements",
        "List agreements",
        list_agreements,
        list[api.AgreementListEntry],
        query=AgreementListQuery,
        errors=(400,),
    ),
    Route(
        "GET",
        "/agreements/{agreementId}",
        "getAgreement",
        "Get an agreement",
        get_agreement,
        api.Agreement,
        errors=(404,),
    ),
    Route(
        "POST",
        "/agreements/{agreementId}/confirm",
        "confirmAgreement",
        "Sign and send to the provider",
        confirm_agreement,
        None,
        query=ConfirmQuery,
        errors=(404, 409, 410),
        description="Answers 204.",
    ),
    Route(
        "POST",
        "/agreements/{agreementId}/wait",
        "waitForApproval",
        "Wait for the provider's approval",
        wait_for_approval,
        None,
        query=WaitQuery,
        errors=(404, 408, 409, 410),
        description="204 once Approved; 408 after `timeout`; 410 naming the final state otherwise.",
    ),
    Route(
        "POST",
        "/agreements/{agreementId}/cancel",
        "cancelAgreement",
        "Withdraw before approval",
        cancel_agreement,
        None,
        errors=(404, 409, 410),
        description="Body: an optional `Reason`. 200, empty.",
    ),
    Route(
        "POST",
        "/agreements/{agreementId}/terminate",
        "terminateAgreement",
        "End an approved agreement",
        terminate_agreement,
        None,
        errors=(404, 409, 410),
        description="Body: `Reason`. Sends our signed termination; answers 200 with an empty body.",
    ),
    Route(
        "GET",
        "/agreements/{agreementId}/terminate/reason",
        "getAgreementTerminationReason",
        "Why an agreement was terminated",
        get_terminate_reason,
        api.Reason,
        errors=(404, 409),
    ),
    Route(
        "GET",
        "/agreementEvents",
        "collectAgreementEvents",
        "Long-poll agreement state changes",
        collect_agreement_events,
        list[api.AgreementOperationEvent],
        query=AgreementEventsQuery,
        errors=(400,),
    ),
    Route("GET", "/openapi.json", "getOpenApi", "This document", get_openapi, dict[str, Any]),
)


def build_market_api(service: RequestorMarketService) -> web.Application:
    """The ``/market-api/v1`` sub-app over ``service``; mount it with :func:`requestor.app.add_api`."""
    app = web.Application()
    app[MARKET_SERVICE] = service
    for route in ROUTES:
        app.router.add_route(route.method, route.path, route.handler, name=route.operation_id)
    return app


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of this API (what ``requestor/openapi/market.json`` holds)."""
    return build_document(
        ROUTES,
        title="Golem requestor daemon: Market API (yagna-compatible, requestor side)",
        version=API_VERSION,
        server_url=API_PREFIX,
        error_model=api.ErrorMessage,
        description=(
            "yagna's Market API as yapapi 0.13.1 uses it. "
            "Every call needs `Authorization: Bearer <app key>`. "
            'Ids are JSON strings; every error body is `{"message": ...}`. The 200 response of each '
            "operation documents its body, whatever its actual success status (201, 204)."
        ),
    )


@functools.cache
def _openapi_text() -> str:
    return render(openapi_document())


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m requestor.market_api [--check]``: rewrite (or check) the committed document."""
    return document_cli("requestor.market_api", _openapi_text(), COMMITTED_PATH, argv)


if __name__ == "__main__":
    sys.exit(main())
