"""The requestor side of yagna's Payment API (``/payment-api/v1``), as yapapi 0.13.1 calls it.

A thin shell over :class:`~payments.service.RequestorPayments`: each handler parses the path, query
and body into models, calls one service method and serialises the answer. :func:`error_middleware`
is the only place where payment errors become HTTP statuses (:data:`HTTP_STATUS`), with yagna's codes:
400 for a bad body or an acceptance that does not fit, 404 for an unknown id, 410 for a released
allocation, 501 for debit-note rejection. Allocation creation alone answers errors as RFC 7807
``application/problem+json``, as yagna does. App-key authentication is not done here: the requestor
daemon mounts this sub-application behind its own auth middleware.

The routes are declared once in :data:`ROUTES`; the OpenAPI document (``payments/openapi.json``) is
generated from them and the models. Regenerate it with ``python -m payments.api`` (``--check`` only
reports whether the committed file is stale).
"""

from __future__ import annotations

import functools
import json
import logging
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import AwareDatetime, BaseModel, Field, TypeAdapter, ValidationError

from market.core.errors import GolemError, InvalidTransition
from market.core.logging import correlated
from market.core.wire import RequestModel
from market.hub.openapi import REF_TEMPLATE, Route, build_document, document_cli, render
from market.rest import QueryError, http_exception_response, parse_query
from payments.allocation import Allocation as AllocationRecord
from payments.errors import (
    AllocationError,
    AllocationReleasedError,
    AmountMismatchError,
    DocumentNotAcceptableError,
    DriverError,
    InsufficientFundsError,
    InvalidInputError,
    InvalidStateError,
    NotFoundError,
    NotSupportedError,
    PaymentError,
)
from payments.models import (
    Acceptance,
    Allocation,
    DebitNote,
    DebitNoteEvent,
    ErrorMessage,
    Invoice,
    InvoiceEvent,
    MarketDecoration,
    NewAllocation,
    Payment,
    ProblemDetails,
    Rejection,
)
from payments.service import EventKind, RequestorPayments

log = logging.getLogger(__name__)

API_PREFIX = "/payment-api/v1"
API_VERSION = "1"
COMMITTED_PATH = Path(__file__).with_name("openapi.json")

DEFAULT_EVENT_TIMEOUT = 5.0
DEFAULT_ACK_TIMEOUT = 15.0
MAX_POLL_SECONDS = 60.0
"""Long-polls are cut short here whatever ``timeout`` asks, so a client cannot pin a handler for hours."""

SERVICE_KEY: web.AppKey[RequestorPayments] = web.AppKey("requestor_payments", RequestorPayments)

HTTP_STATUS: dict[type[GolemError], int] = {
    NotFoundError: 404,
    AllocationReleasedError: 410,
    InsufficientFundsError: 400,
    AllocationError: 400,
    AmountMismatchError: 400,
    DocumentNotAcceptableError: 400,
    InvalidInputError: 400,
    InvalidStateError: 409,
    InvalidTransition: 409,
    NotSupportedError: 501,
    DriverError: 500,
    PaymentError: 500,
}
"""The HTTP status of each payment error (most specific class wins); the API's only such mapping."""

PROBLEM_TYPES: dict[type[PaymentError], str] = {
    InsufficientFundsError: "insufficient-funds",
    AllocationError: "allocation-refused",
    InvalidInputError: "invalid-request",
}

_Q = TypeVar("_Q", bound=BaseModel)
_B = TypeVar("_B", bound=BaseModel)


class BadRequest(InvalidInputError):
    """A request the edge itself refuses (malformed JSON, query or body)."""


# --- queries ----------------------------------------------------------------------------------------


class EventsQuery(RequestModel):
    """Parameters of the ``/debitNoteEvents`` and ``/invoiceEvents`` long-polls."""

    timeout: float = Field(
        default=DEFAULT_EVENT_TIMEOUT,
        ge=0,
        description="Seconds to wait for at least one event (0: answer at once).",
    )
    after_timestamp: AwareDatetime | None = Field(
        default=None, description="Only events strictly after this instant (RFC 3339 with an offset)."
    )
    max_events: int = Field(default=10, ge=1, le=100, description="At most this many events.")
    app_session_id: str | None = Field(default=None, description="Accepted and ignored.")


class ListQuery(RequestModel):
    """Parameters of the document list endpoints."""

    after_timestamp: AwareDatetime | None = Field(
        default=None, description="Only documents received strictly after this instant."
    )
    max_items: int | None = Field(default=None, ge=1, description="At most this many documents.")


class AckQuery(RequestModel):
    """Parameters of accept and reject."""

    timeout: float = Field(
        default=DEFAULT_ACK_TIMEOUT, ge=0, description="Seconds to wait for the provider (accepted, unused)."
    )


class DecorationQuery(RequestModel):
    """Parameters of ``/demandDecorations``."""

    allocation_ids: str = Field(description="Comma-separated allocation ids.")


# --- parsing and serialising ------------------------------------------------------------------------


def _problems(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or 'body'}: {error['msg']}" for error in exc.errors()
    )


def _query(request: web.Request, model: type[_Q]) -> _Q:
    try:
        return parse_query(request, model)
    except QueryError as exc:
        raise BadRequest(str(exc)) from exc


async def _body(request: web.Request, model: type[_B]) -> _B:
    text = await request.text()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadRequest(f"malformed JSON body: {exc}") from exc
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise BadRequest(f"invalid {model.__name__}: {_problems(exc)}") from exc


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status)


def allocation_wire(allocation: AllocationRecord) -> Allocation:
    """The wire form of an allocation."""
    return Allocation(
        allocation_id=allocation.allocation_id,
        address=allocation.address,
        payment_platform=allocation.platform,
        total_amount=allocation.total,
        spent_amount=allocation.spent,
        remaining_amount=allocation.remaining,
        timestamp=allocation.timestamp,
        timeout=allocation.timeout,
        make_deposit=allocation.make_deposit,
        extend_timeout=allocation.extend_timeout,
        created_ts=allocation.created,
        updated_ts=allocation.updated,
    )


def _event_kinds(request: web.Request) -> list[EventKind] | None:
    # yagna's filter header for documents this node holds as the requestor; the provider one is moot
    # here (this API serves only the requestor side).
    header = request.headers.get("X-Requestor-Events")
    if header is None:
        return None
    names = [name.strip().upper() for name in header.split(",") if name.strip()]
    try:
        return [EventKind(name) for name in names]
    except ValueError:
        known = ", ".join(k.value for k in EventKind)
        raise BadRequest(f"X-Requestor-Events: unknown event kind in {header!r} (known: {known})") from None


def _service(request: web.Request) -> RequestorPayments:
    return request.app[SERVICE_KEY]


# --- handlers ---------------------------------------------------------------------------------------


async def create_allocation(request: web.Request) -> web.Response:
    new = await _body(request, NewAllocation)
    allocation = await _service(request).create_allocation(new)
    return _json(allocation_wire(allocation).to_wire(), status=201)


async def list_allocations(request: web.Request) -> web.Response:
    return _json([allocation_wire(a).to_wire() for a in _service(request).allocations()])


async def get_allocation(request: web.Request) -> web.Response:
    allocation = _service(request).allocation(request.match_info["allocationId"])
    return _json(allocation_wire(allocation).to_wire())


async def release_allocation(request: web.Request) -> web.Response:
    _service(request).release_allocation(request.match_info["allocationId"])
    return _json(None)


async def get_demand_decorations(request: web.Request) -> web.Response:
    query = _query(request, DecorationQuery)
    ids = [part.strip() for part in query.allocation_ids.split(",") if part.strip()]
    return _json(_service(request).demand_decoration(ids).to_wire())


async def list_debit_notes(request: web.Request) -> web.Response:
    query = _query(request, ListQuery)
    notes = _service(request).debit_notes(after=query.after_timestamp, max_items=query.max_items)
    return _json([n.to_wire() for n in notes])


async def get_debit_note(request: web.Request) -> web.Response:
    return _json(_service(request).debit_note(request.match_info["debitNoteId"]).to_wire())


async def accept_debit_note(request: web.Request) -> web.Response:
    _query(request, AckQuery)
    acceptance = await _body(request, Acceptance)
    await _service(request).accept_debit_note(request.match_info["debitNoteId"], acceptance)
    return _json(None)


async def reject_debit_note(request: web.Request) -> web.Response:
    _query(request, AckQuery)
    rejection = await _body(request, Rejection)
    _service(request).reject_debit_note(request.match_info["debitNoteId"], rejection)
    return _json(None)


async def get_debit_note_events(request: web.Request) -> web.Response:
    query = _query(request, EventsQuery)
    events = await _service(request).wait_debit_note_events(
        after=query.after_timestamp,
        timeout=min(query.timeout, MAX_POLL_SECONDS),
        max_events=query.max_events,
        kinds=_event_kinds(request),
    )
    return _json([e.to_wire() for e in events])


async def list_invoices(request: web.Request) -> web.Response:
    query = _query(request, ListQuery)
    invoices = _service(request).invoices(after=query.after_timestamp, max_items=query.max_items)
    return _json([i.to_wire() for i in invoices])


async def get_invoice(request: web.Request) -> web.Response:
    return _json(_service(request).invoice(request.match_info["invoiceId"]).to_wire())


async def accept_invoice(request: web.Request) -> web.Response:
    _query(request, AckQuery)
    acceptance = await _body(request, Acceptance)
    await _service(request).accept_invoice(request.match_info["invoiceId"], acceptance)
    return _json(None)


async def reject_invoice(request: web.Request) -> web.Response:
    _query(request, AckQuery)
    rejection = await _body(request, Rejection)
    _service(request).reject_invoice(request.match_info["invoiceId"], rejection)
    return _json(None)


async def get_invoice_events(request: web.Request) -> web.Response:
    query = _query(request, EventsQuery)
    events = await _service(request).wait_invoice_events(
        after=query.after_timestamp,
        timeout=min(query.timeout, MAX_POLL_SECONDS),
        max_events=query.max_events,
        kinds=_event_kinds(request),
    )
    return _json([e.to_wire() for e in events])


async def list_payments(request: web.Request) -> web.Response:
    query = _query(request, EventsQuery)
    payments = _service(request).payments(after=query.after_timestamp, max_items=query.max_events)
    return _json([p.to_wire() for p in payments])


async def get_payment(request: web.Request) -> web.Response:
    return _json(_service(request).payment(request.match_info["paymentId"]).to_wire())


async def get_openapi(request: web.Request) -> web.Response:
    # The same bytes as the committed payments/openapi.json (the drift test sees to that).
    return web.Response(text=_openapi_text(), content_type="application/json")


ROUTES: tuple[Route, ...] = (
    Route(
        "POST",
        "/allocations",
        "createAllocation",
        "Reserve a budget on a payment platform",
        create_allocation,
        Allocation,
        errors=(400,),
        description="Answers 201. Errors are `application/problem+json` (unknown platform, funds short).",
    ),
    Route(
        "GET", "/allocations", "getAllocations", "List live allocations", list_allocations, list[Allocation]
    ),
    Route(
        "GET",
        "/allocations/{allocationId}",
        "getAllocation",
        "Get one allocation",
        get_allocation,
        Allocation,
        errors=(404, 410),
    ),
    Route(
        "DELETE",
        "/allocations/{allocationId}",
        "releaseAllocation",
        "Release an allocation",
        release_allocation,
        None,
        errors=(404, 410),
    ),
    Route(
        "GET",
        "/demandDecorations",
        "getDemandDecorations",
        "Properties and constraints to merge into a demand",
        get_demand_decorations,
        MarketDecoration,
        query=DecorationQuery,
        errors=(400, 404, 410),
    ),
    Route(
        "GET",
        "/debitNotes",
        "getDebitNotes",
        "List received debit notes",
        list_debit_notes,
        list[DebitNote],
        query=ListQuery,
        errors=(400,),
    ),
    Route(
        "GET",
        "/debitNotes/{debitNoteId}",
        "getDebitNote",
        "Get one debit note",
        get_debit_note,
        DebitNote,
        errors=(404,),
    ),
    Route(
        "POST",
        "/debitNotes/{debitNoteId}/accept",
        "acceptDebitNote",
        "Accept a debit note (commits funds from the allocation)",
        accept_debit_note,
        None,
        query=AckQuery,
        errors=(400, 404, 409, 410),
        description="400 if the amount differs from `totalAmountDue`, or the allocation is unknown or short.",
    ),
    Route(
        "POST",
        "/debitNotes/{debitNoteId}/reject",
        "rejectDebitNote",
        "Reject a debit note (not implemented, as in yagna)",
        reject_debit_note,
        None,
        query=AckQuery,
        errors=(400, 404, 501),
    ),
    Route(
        "GET",
        "/debitNoteEvents",
        "getDebitNoteEvents",
        "Long-poll debit-note events",
        get_debit_note_events,
        list[DebitNoteEvent],
        query=EventsQuery,
        errors=(400,),
        description="Header `X-Requestor-Events` (e.g. `RECEIVED,CANCELLED`, the default) filters the types.",
    ),
    Route(
        "GET",
        "/invoices",
        "getInvoices",
        "List received invoices",
        list_invoices,
        list[Invoice],
        query=ListQuery,
        errors=(400,),
    ),
    Route(
        "GET", "/invoices/{invoiceId}", "getInvoice", "Get one invoice", get_invoice, Invoice, errors=(404,)
    ),
    Route(
        "POST",
        "/invoices/{invoiceId}/accept",
        "acceptInvoice",
        "Accept an invoice (commits funds and orders the payment)",
        accept_invoice,
        None,
        query=AckQuery,
        errors=(400, 404, 409, 410),
        description="Accepting an Accepted or Settled invoice again answers 200; a Cancelled one 400.",
    ),
    Route(
        "POST",
        "/invoices/{invoiceId}/reject",
        "rejectInvoice",
        "Reject an invoice",
        reject_invoice,
        None,
        query=AckQuery,
        errors=(400, 404, 409),
    ),
    Route(
        "GET",
        "/invoiceEvents",
        "getInvoiceEvents",
        "Long-poll invoice events",
        get_invoice_events,
        list[InvoiceEvent],
        query=EventsQuery,
        errors=(400,),
        description="Header `X-Requestor-Events` (e.g. `RECEIVED,CANCELLED`, the default) filters the types.",
    ),
    Route(
        "GET",
        "/payments",
        "getPayments",
        "List payments made",
        list_payments,
        list[Payment],
        query=EventsQuery,
        errors=(400,),
    ),
    Route(
        "GET", "/payments/{paymentId}", "getPayment", "Get one payment", get_payment, Payment, errors=(404,)
    ),
    Route("GET", "/openapi.json", "getOpenApi", "This document", get_openapi, dict[str, Any]),
)

REQUEST_BODIES: dict[str, type[BaseModel]] = {
    "createAllocation": NewAllocation,
    "acceptDebitNote": Acceptance,
    "rejectDebitNote": Rejection,
    "acceptInvoice": Acceptance,
    "rejectInvoice": Rejection,
}
"""The JSON body each operation reads (the shared generator documents only queries and responses)."""

CREATED = frozenset({"createAllocation"})
"""Operations that answer 201 rather than 200."""


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of this API (what ``payments/openapi.json`` holds)."""
    document = build_document(
        ROUTES,
        title="Golem Payment API (requestor side)",
        version=API_VERSION,
        server_url=API_PREFIX,
        error_model=ErrorMessage,
        description=(
            "yagna-compatible requestor Payment API: allocations, received debit notes and invoices, "
            "acceptance, event long-polls and payments. Amounts are decimal strings. Errors are "
            '`{"message": ...}`, except allocation creation, which answers `application/problem+json`.'
        ),
    )
    schemas: dict[str, Any] = document["components"]["schemas"]

    def ref(model: type[BaseModel]) -> dict[str, str]:
        schema = TypeAdapter(model).json_schema(by_alias=True, ref_template=REF_TEMPLATE, mode="validation")
        for name, definition in {**schema.pop("$defs", {}), model.__name__: schema}.items():
            definition = _without_property_titles(definition)
            known = schemas.setdefault(name, definition)
            if known != definition:
                if name != model.__name__:
                    raise ValueError(f"two different schemas are both named {name!r}")
                # The request form of a model the responses also use differs; keep both apart.
                schemas[f"{name}Input"] = definition
                return {"$ref": REF_TEMPLATE.format(model=f"{name}Input")}
        return {"$ref": REF_TEMPLATE.format(model=model.__name__)}

    for path in document["paths"].values():
        for operation in path.values():
            op_id = operation["operationId"]
            if op_id in REQUEST_BODIES:
                operation["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": ref(REQUEST_BODIES[op_id])}},
                }
            if op_id in CREATED:
                operation["responses"]["201"] = operation["responses"].pop("200")
                operation["responses"]["201"]["description"] = "Created"
                operation["responses"]["400"]["content"] = {
                    "application/problem+json": {"schema": ref(ProblemDetails)}
                }
    return document


def _without_property_titles(schema: dict[str, Any]) -> dict[str, Any]:
    # As the shared generator does: pydantic titles fields after their Python names ("Allocationid").
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return schema
    tidy = {name: {k: v for k, v in prop.items() if k != "title"} for name, prop in properties.items()}
    return {**schema, "properties": tidy}


@functools.cache
def _openapi_text() -> str:
    return render(openapi_document())


def generated_text() -> str:
    """What ``payments/openapi.json`` should contain for the code as it is now."""
    return render(openapi_document())


# --- errors -----------------------------------------------------------------------------------------


def status_of(exc: GolemError) -> int:
    """The HTTP status for a domain error: the entry of its most specific class in :data:`HTTP_STATUS`."""
    for cls in type(exc).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return 500


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(ErrorMessage(message=message).to_wire(), status=status, headers=headers)


def _problem(request: web.Request, exc: PaymentError, status: int) -> web.Response:
    problem_type = next((PROBLEM_TYPES[c] for c in type(exc).__mro__ if c in PROBLEM_TYPES), "about:blank")
    problem = ProblemDetails(
        type=problem_type,
        title="Allocation refused",
        status=status,
        detail=str(exc),
        payment_platform=exc.platform if isinstance(exc, AllocationError) else None,
        address=exc.address if isinstance(exc, AllocationError) else None,
    )
    return web.json_response(problem.to_wire(), status=status, content_type="application/problem+json")


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every failure into yagna's status and error body (problem+json for allocation creation)."""
    with correlated(f"payment-api:{secrets.token_hex(4)}"):
        try:
            return await handler(request)
        except GolemError as exc:
            status = status_of(exc)
            if status >= 500:
                log.error("%s %s failed: %s", request.method, request.path, exc)
            creating = request.method == "POST" and request.match_info.route.name == "createAllocation"
            if creating and isinstance(exc, PaymentError) and status < 500:
                return _problem(request, exc, status)
            return _error(status, "internal error" if status == 500 else str(exc))
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return http_exception_response(exc)
        except Exception:
            log.exception("%s %s failed", request.method, request.path)
            return _error(500, "internal error")


def build_payment_api(service: RequestorPayments) -> web.Application:
    """The ``/payment-api/v1`` sub-application over ``service``; mount it with ``app.add_subapp``."""
    app = web.Application(middlewares=[error_middleware])
    app[SERVICE_KEY] = service
    for route in ROUTES:
        app.router.add_route(route.method, route.path, route.handler, name=route.operation_id)
    return app


def main(argv: Sequence[str] | None = None) -> int:
    """Write (or ``--check``) the committed OpenAPI document of the Payment API."""
    return document_cli("payments.api", generated_text(), COMMITTED_PATH, argv)


if __name__ == "__main__":
    sys.exit(main())
