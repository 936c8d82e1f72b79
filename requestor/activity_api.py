"""yagna's Activity API (``/activity-api/v1``), requestor side, over :class:`RequestorActivities`.

Shapes and statuses follow ``spec/yagna-rest-api.md`` §2.3-2.4 and §3.3-3.4: ``POST /activity``
takes a bare JSON string (what yapapi sends) and answers one; batch results are long-polled as JSON
or streamed as server-sent events when ``Accept`` is exactly ``text/event-stream``, and the stream is
kept open after the last event (pinged every 15 s) because yapapi's SSE client reconnects on EOF.
App-key checks are the daemon's middleware; this sub-app maps its own errors.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import Field, ValidationError

from market.core.wire import RequestModel, WireModel
from market.hub.openapi import Route, build_document, document_cli, render
from requestor.activities import ActivityApiError, RequestorActivities

log = logging.getLogger(__name__)

SERVICE_KEY: web.AppKey[RequestorActivities] = web.AppKey("activities", RequestorActivities)
COMMITTED_PATH = Path(__file__).with_name("activity_openapi.json")
SSE_PING_SECONDS = 15.0
SSE_MAX_IDLE_SECONDS = 600.0

STATUS = {
    "bad_request": 400,
    "forbidden": 403,
    "not_found": 404,
    "timeout": 408,
    "conflict": 409,
}


class ErrorMessage(WireModel):
    message: str


class ExeScriptRequest(RequestModel):
    text: str


class CreateActivityRequest(RequestModel):
    agreement_id: str
    requestor_pub_key: str | None = None


class CreateActivityResult(WireModel):
    activity_id: str


class ResultsQuery(RequestModel):
    timeout: float = Field(default=0.0, ge=0)
    command_index: int | None = Field(default=None, ge=0)


class TimeoutQuery(RequestModel):
    timeout: float = Field(default=5.0, ge=0)


class AgreementQuery(RequestModel):
    agreement_id: str


class ActivityState(WireModel):
    state: tuple[str, str | None]
    reason: str | None = None
    error_message: str | None = None


class ActivityUsage(WireModel):
    current_usage: list[float]
    timestamp: int


class CommandResult(WireModel):
    index: int
    event_date: str
    result: str
    stdout: Any = None
    stderr: Any = None
    message: str | None = None
    is_batch_finished: bool = False


def _service(request: web.Request) -> RequestorActivities:
    return request.app[SERVICE_KEY]


def _query(request: web.Request, model: type[Any]) -> Any:
    try:
        return model.model_validate(dict(request.query))
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ActivityApiError(
            "bad_request", f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
        ) from exc


async def _json_body(request: web.Request) -> Any:
    try:
        return await request.json()
    except ValueError as exc:
        raise ActivityApiError("bad_request", f"request body is not JSON: {exc}") from exc


async def create_activity(request: web.Request) -> web.StreamResponse:
    query = _query(request, TimeoutQuery)
    body = await _json_body(request)
    if isinstance(body, str):
        activity_id = await _service(request).create(body, query.timeout)
        return web.json_response(activity_id)  # yapapi reads a bare JSON string back
    try:
        parsed = CreateActivityRequest.model_validate(body)
    except ValidationError as exc:
        raise ActivityApiError("bad_request", f"expected an agreement id: {exc.errors()[0]['msg']}") from exc
    activity_id = await _service(request).create(parsed.agreement_id, query.timeout)
    return web.json_response(CreateActivityResult(activity_id=activity_id).to_wire())


async def list_activities(request: web.Request) -> web.StreamResponse:
    query = _query(request, AgreementQuery)
    return web.json_response(_service(request).ids_for(query.agreement_id))


async def destroy_activity(request: web.Request) -> web.StreamResponse:
    await _service(request).destroy(request.match_info["activityId"])
    return web.json_response(None)


async def call_exec(request: web.Request) -> web.StreamResponse:
    body = await _json_body(request)
    try:
        script = ExeScriptRequest.model_validate(body)
    except ValidationError as exc:
        raise ActivityApiError(
            "bad_request", f'expected {{"text": <ExeScript>}}: {exc.errors()[0]["msg"]}'
        ) from exc
    batch_id = await _service(request).exec(request.match_info["activityId"], script.text)
    return web.json_response(batch_id)


async def batch_results(request: web.Request) -> web.StreamResponse:
    activity_id, batch_id = request.match_info["activityId"], request.match_info["batchId"]
    if request.headers.get("Accept") == "text/event-stream":
        return await _stream(request, activity_id, batch_id)
    query = _query(request, ResultsQuery)
    results = await _service(request).results(activity_id, batch_id, query.command_index, query.timeout)
    return web.json_response(results)


async def _stream(request: web.Request, activity_id: str, batch_id: str) -> web.StreamResponse:
    service = _service(request)
    service.batch_owner(activity_id, batch_id)  # 404 before the stream starts
    after = 0
    last_id = request.headers.get("Last-Event-Id")
    if last_id is not None and last_id.isdigit():
        after = int(last_id) + 1
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    number = after
    try:
        async for event in service.events(activity_id, batch_id, after):
            await response.write(f"event: runtime\ndata: {json.dumps(event)}\nid: {number}\n\n".encode())
            number += 1
        # yagna never closes the stream; yapapi stops reading on its own after the last command.
        # Ping now and then, and notice within a second when the client has gone.
        idle = 0.0
        while idle < SSE_MAX_IDLE_SECONDS:
            transport = request.transport
            if transport is None or transport.is_closing():
                break
            await asyncio.sleep(1.0)
            idle += 1.0
            if idle % SSE_PING_SECONDS == 0:
                await response.write(b":ping\n\n")
    except (ConnectionResetError, ActivityApiError) as exc:
        log.debug("event stream of batch %s ended: %s", batch_id, exc)
    return response


async def activity_state(request: web.Request) -> web.StreamResponse:
    return web.json_response(await _service(request).state(request.match_info["activityId"]))


async def activity_usage(request: web.Request) -> web.StreamResponse:
    return web.json_response(await _service(request).usage(request.match_info["activityId"]))


async def activity_agreement(request: web.Request) -> web.StreamResponse:
    return web.json_response(_service(request).get(request.match_info["activityId"]).agreement_id)


ROUTES: tuple[Route, ...] = (
    Route(
        "POST",
        "/activity",
        "createActivity",
        "Start an activity on the agreement's provider",
        create_activity,
        str,
        query=TimeoutQuery,
        errors=(400, 404, 500),
        body=str,
        description="The body is the agreement id as a bare JSON string (or an object); so is the answer.",
    ),
    Route(
        "GET",
        "/activity",
        "listActivities",
        "Activity ids of an agreement",
        list_activities,
        list[str],
        query=AgreementQuery,
        errors=(400,),
    ),
    Route(
        "DELETE",
        "/activity/{activityId}",
        "destroyActivity",
        "Destroy an activity",
        destroy_activity,
        None,
        errors=(404, 500),
    ),
    Route(
        "POST",
        "/activity/{activityId}/exec",
        "callExec",
        "Run an ExeScript batch",
        call_exec,
        str,
        errors=(400, 404, 500),
        body=ExeScriptRequest,
    ),
    Route(
        "GET",
        "/activity/{activityId}/exec/{batchId}",
        "getExecBatchResults",
        "Batch results (JSON long-poll), or its events as SSE with Accept: text/event-stream",
        batch_results,
        list[CommandResult],
        query=ResultsQuery,
        errors=(400, 404, 408, 500),
    ),
    Route(
        "GET",
        "/activity/{activityId}/state",
        "getActivityState",
        "Activity state",
        activity_state,
        ActivityState,
        errors=(404, 500),
    ),
    Route(
        "GET",
        "/activity/{activityId}/usage",
        "getActivityUsage",
        "Usage counters",
        activity_usage,
        ActivityUsage,
        errors=(404, 500),
    ),
    Route(
        "GET",
        "/activity/{activityId}/agreement",
        "getActivityAgreement",
        "The activity's agreement id",
        activity_agreement,
        str,
        errors=(404,),
    ),
)


def openapi_document() -> dict[str, Any]:
    return build_document(
        ROUTES,
        title="Activity API (requestor side, yagna-compatible)",
        version="1",
        server_url="/activity-api/v1",
        error_model=ErrorMessage,
    )


@web.middleware
async def error_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except ActivityApiError as exc:
        status = STATUS.get(exc.code, 500)
        if status == 500:
            log.warning("%s %s failed: %s (%s)", request.method, request.path, exc, exc.code)
        return web.json_response(ErrorMessage(message=str(exc)).to_wire(), status=status)


def build_activity_api(service: RequestorActivities) -> web.Application:
    """The ``/activity-api/v1`` sub-application; mount it with ``app.add_subapp``."""
    app = web.Application(middlewares=[error_middleware])
    app[SERVICE_KEY] = service
    for route in ROUTES:
        app.router.add_route(route.method, route.path, route.handler, name=route.operation_id)
    return app


if __name__ == "__main__":
    sys.exit(document_cli("requestor.activity_api", render(openapi_document()), COMMITTED_PATH))
