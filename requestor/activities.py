"""The requestor's side of activities: yagna's Activity API calls become relay calls to providers.

Each activity lives on the provider of its agreement (:mod:`exeunits.host` serves it there). This
service remembers which provider holds which activity, forwards create/exec/results/events/state/
usage/destroy over the :class:`~market.client.relay.RelayRouter`, and turns the provider's answers
into the shapes yapapi reads. ExeScripts are parsed here first, so a bad script is refused before
anything is sent.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

from exeunits.errors import ExeScriptError
from exeunits.script import parse_exescript
from market.client.relay import RelayRouter, RelayRpcError
from market.core.errors import GolemError
from market.core.ids import NodeId
from market.protocol.messages import Agreement, AgreementState

USAGE_COUNTERS = {"golem.usage.cpu_sec": "cpuSec", "golem.usage.duration_sec": "durationSec"}


class ActivityApiError(GolemError):
    """An Activity API call failed; ``code`` is a relay error code (``not_found``, ``timeout``...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class AgreementDirectory(Protocol):
    """The requestor's approved agreements, as the activity service needs them."""

    def provider_of(self, agreement_id: str) -> NodeId | None:
        """The provider of an approved, live agreement; None otherwise."""
        ...

    def usage_vector(self, agreement_id: str) -> list[str]:
        """The agreement's ``golem.com.usage.vector``."""
        ...


class ApprovedAgreements:
    """:class:`AgreementDirectory` over the requestor's market service: approved agreements only."""

    def __init__(self, market: AgreementSource) -> None:
        self.market = market

    def _approved(self, agreement_id: str) -> Agreement | None:
        try:
            agreement = self.market.agreement(agreement_id)
        except GolemError:
            return None
        return agreement if agreement.state is AgreementState.APPROVED else None

    def provider_of(self, agreement_id: str) -> NodeId | None:
        agreement = self._approved(agreement_id)
        return None if agreement is None else NodeId(agreement.offer.provider_id)

    def usage_vector(self, agreement_id: str) -> list[str]:
        agreement = self._approved(agreement_id)
        vector = agreement.offer.properties.get("golem.com.usage.vector") if agreement else None
        return [str(name) for name in vector] if isinstance(vector, list) else list(USAGE_COUNTERS)


class AgreementSource(Protocol):
    def agreement(self, agreement_id: str) -> Agreement: ...


@dataclass
class RemoteActivity:
    activity_id: str
    agreement_id: str
    provider_id: NodeId
    batch_sizes: dict[str, int]
    terminated: bool = False


class RequestorActivities:
    """Activities this requestor created, and the calls that drive them."""

    def __init__(
        self, router: RelayRouter, agreements: AgreementDirectory, *, call_timeout: float = 60.0
    ) -> None:
        self.router = router
        self.agreements = agreements
        self.call_timeout = call_timeout
        self.activities: dict[str, RemoteActivity] = {}

    async def create(self, agreement_id: str, timeout: float | None = None) -> str:
        provider = self.agreements.provider_of(agreement_id)
        if provider is None:
            raise ActivityApiError("not_found", f"no approved agreement {agreement_id}")
        # Creating an activity fetches the package on the provider: allow it more than a plain call.
        result = await self._call(
            provider, "activity.create", {"agreementId": agreement_id}, max(timeout or 0, 300)
        )
        activity_id = str(result["activityId"])
        self.activities[activity_id] = RemoteActivity(activity_id, agreement_id, provider, {})
        return activity_id

    def ids_for(self, agreement_id: str) -> list[str]:
        return [a.activity_id for a in self.activities.values() if a.agreement_id == agreement_id]

    def get(self, activity_id: str) -> RemoteActivity:
        activity = self.activities.get(activity_id)
        if activity is None:
            raise ActivityApiError("not_found", f"no activity {activity_id}")
        return activity

    async def exec(self, activity_id: str, text: str) -> str:
        activity = self.get(activity_id)
        try:
            commands = parse_exescript(text)
        except ExeScriptError as exc:
            raise ActivityApiError("bad_request", str(exc)) from exc
        result = await self._call(
            activity.provider_id, "activity.exec", {"activityId": activity_id, "exeScript": text}
        )
        batch_id = str(result["batchId"])
        activity.batch_sizes[batch_id] = len(commands)
        return batch_id

    async def results(
        self, activity_id: str, batch_id: str, command_index: int | None, timeout: float
    ) -> list[dict[str, Any]]:
        activity = self.batch_owner(activity_id, batch_id)
        params: dict[str, Any] = {"activityId": activity_id, "batchId": batch_id, "timeout": timeout}
        if command_index is not None:
            params["commandIndex"] = command_index
        result = await self._call(
            activity.provider_id, "activity.results", params, timeout + self.call_timeout
        )
        return list(result.get("results", []))

    async def events(self, activity_id: str, batch_id: str, after: int = 0) -> AsyncIterator[dict[str, Any]]:
        """Every runtime event of a batch from ``after`` on, in order, until the batch finishes."""
        activity = self.batch_owner(activity_id, batch_id)
        position = after
        while True:
            page = await self._call(
                activity.provider_id,
                "activity.events",
                {"activityId": activity_id, "batchId": batch_id, "after": position, "timeout": 15},
                15 + self.call_timeout,
            )
            for event in page.get("events", []):
                position += 1
                yield dict(event)
            if page.get("finished"):
                return

    async def state(self, activity_id: str) -> dict[str, Any]:
        activity = self.get(activity_id)
        if activity.terminated:
            return {"state": ["Terminated", None]}
        return await self._call(activity.provider_id, "activity.state", {"activityId": activity_id})

    async def usage(self, activity_id: str) -> dict[str, Any]:
        activity = self.get(activity_id)
        counters = await self._call(activity.provider_id, "activity.usage", {"activityId": activity_id})
        vector = self.agreements.usage_vector(activity.agreement_id)
        return {
            "currentUsage": [float(counters.get(USAGE_COUNTERS.get(name, ""), 0.0)) for name in vector],
            "timestamp": int(time.time()),
        }

    async def destroy(self, activity_id: str) -> None:
        activity = self.get(activity_id)
        if activity.terminated:
            return
        await self._call(activity.provider_id, "activity.destroy", {"activityId": activity_id})
        activity.terminated = True

    def batch_owner(self, activity_id: str, batch_id: str) -> RemoteActivity:
        activity = self.get(activity_id)
        if batch_id not in activity.batch_sizes:
            raise ActivityApiError("not_found", f"no batch {batch_id} in activity {activity_id}")
        return activity

    async def _call(
        self, provider: NodeId, method: str, params: dict[str, Any], timeout: float | None = None
    ) -> dict[str, Any]:
        try:
            return await self.router.call(provider, method, params, timeout or self.call_timeout)
        except RelayRpcError as exc:
            raise ActivityApiError(exc.code, str(exc)) from exc
