"""The requestor's side of activities: yagna's Activity API calls become relay calls to providers.

Each activity lives on the provider of its agreement (:mod:`exeunits.host` serves it there). This
service remembers which provider holds which activity, forwards create/exec/results/events/state/
usage/destroy over the :class:`~market.client.relay.RelayRouter`, and turns the provider's answers
into the shapes yapapi reads. ExeScripts are parsed here first, so a bad script is refused before
anything is sent.

Every activity is recorded in the daemon's SQLite file (:class:`ActivityStore`, schema
:data:`ACTIVITIES_SCHEMA`): id, agreement, provider, last known state, when it was created and
destroyed, and its batches. After a daemon restart the state, results and destroy calls of a known
activity still work, and memory holds only the activities that are alive.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from exeunits.errors import ExeScriptError
from exeunits.script import parse_exescript
from market.client.relay import RelayRouter, RelayRpcError
from market.core.clock import Clock, SystemClock
from market.core.errors import GolemError
from market.core.ids import NodeId
from market.protocol.messages import Agreement, AgreementState

USAGE_COUNTERS = {"golem.usage.cpu_sec": "cpuSec", "golem.usage.duration_sec": "durationSec"}
TERMINATED = "Terminated"

ACTIVITIES_SCHEMA = """
CREATE TABLE activities (
    activity_id TEXT PRIMARY KEY,
    agreement_id TEXT NOT NULL,
    provider_id TEXT NOT NULL,
    state TEXT NOT NULL,
    created TEXT NOT NULL,
    destroyed TEXT
);
CREATE INDEX activities_agreement ON activities (agreement_id);
CREATE TABLE activity_batches (
    batch_id TEXT PRIMARY KEY,
    activity_id TEXT NOT NULL REFERENCES activities (activity_id),
    commands INTEGER NOT NULL
)
"""
"""Migration creating the ``activities`` and ``activity_batches`` tables (part of the requestor
daemon's migration list)."""


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
    batch_sizes: dict[str, int] = field(default_factory=dict)
    terminated: bool = False


class ActivityStore:
    """The requestor's activity records in its SQLite file (one row per activity and per batch)."""

    def __init__(self, db: sqlite3.Connection, clock: Clock | None = None) -> None:
        self._db = db
        self._clock = clock or SystemClock()

    def add(self, activity: RemoteActivity, state: str) -> None:
        self._db.execute(
            "INSERT INTO activities (activity_id, agreement_id, provider_id, state, created) "
            "VALUES (?, ?, ?, ?, ?)",
            (activity.activity_id, activity.agreement_id, activity.provider_id, state, self._now()),
        )

    def add_batch(self, activity_id: str, batch_id: str, commands: int) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO activity_batches (batch_id, activity_id, commands) VALUES (?, ?, ?)",
            (batch_id, activity_id, commands),
        )

    def set_state(self, activity_id: str, state: str) -> None:
        if state == TERMINATED:
            self._db.execute(
                "UPDATE activities SET state = ?, destroyed = COALESCE(destroyed, ?) WHERE activity_id = ?",
                (state, self._now(), activity_id),
            )
        else:
            self._db.execute(
                "UPDATE activities SET state = ? WHERE activity_id = ? AND state != ?",
                (state, activity_id, TERMINATED),
            )

    def load(self, activity_id: str) -> RemoteActivity | None:
        row = self._db.execute(
            "SELECT agreement_id, provider_id, state FROM activities WHERE activity_id = ?", (activity_id,)
        ).fetchone()
        if row is None:
            return None
        batches = self._db.execute(
            "SELECT batch_id, commands FROM activity_batches WHERE activity_id = ?", (activity_id,)
        ).fetchall()
        return RemoteActivity(
            activity_id,
            row["agreement_id"],
            NodeId(row["provider_id"]),
            {b["batch_id"]: int(b["commands"]) for b in batches},
            terminated=row["state"] == TERMINATED,
        )

    def record(self, activity_id: str) -> dict[str, Any] | None:
        """The stored row (state, created, destroyed...) as a dict, for status views and tests."""
        row = self._db.execute("SELECT * FROM activities WHERE activity_id = ?", (activity_id,)).fetchone()
        return dict(row) if row is not None else None

    def ids_for(self, agreement_id: str) -> list[str]:
        rows = self._db.execute(
            "SELECT activity_id FROM activities WHERE agreement_id = ? ORDER BY created, activity_id",
            (agreement_id,),
        ).fetchall()
        return [row["activity_id"] for row in rows]

    def _now(self) -> str:
        now: datetime = self._clock.now()
        return now.isoformat()


class RequestorActivities:
    """Activities this requestor created, and the calls that drive them.

    With ``db`` (the daemon's SQLite connection, migrated with :data:`ACTIVITIES_SCHEMA`) every
    activity is recorded and survives a restart; without it they live in memory only (tests).
    """

    def __init__(
        self,
        router: RelayRouter,
        agreements: AgreementDirectory,
        *,
        call_timeout: float = 60.0,
        db: sqlite3.Connection | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.router = router
        self.agreements = agreements
        self.call_timeout = call_timeout
        self.store = ActivityStore(db, clock) if db is not None else None
        self.activities: dict[str, RemoteActivity] = {}
        """Live activities (and, without a store, every one); the store has the rest."""

    async def create(self, agreement_id: str, timeout: float | None = None) -> str:
        provider = self.agreements.provider_of(agreement_id)
        if provider is None:
            raise ActivityApiError("not_found", f"no approved agreement {agreement_id}")
        # Creating an activity fetches the package on the provider: allow it more than a plain call.
        result = await self._call(
            provider, "activity.create", {"agreementId": agreement_id}, max(timeout or 0, 300)
        )
        activity = RemoteActivity(str(result["activityId"]), agreement_id, provider)
        self.activities[activity.activity_id] = activity
        if self.store is not None:
            self.store.add(activity, "Initialized")
        return activity.activity_id

    def ids_for(self, agreement_id: str) -> list[str]:
        if self.store is not None:
            return self.store.ids_for(agreement_id)
        return [a.activity_id for a in self.activities.values() if a.agreement_id == agreement_id]

    def get(self, activity_id: str) -> RemoteActivity:
        activity = self.activities.get(activity_id)
        if activity is None and self.store is not None:
            activity = self.store.load(activity_id)
            if activity is not None and not activity.terminated:
                self.activities[activity_id] = activity  # known from before a restart, still alive
        if activity is None:
            raise ActivityApiError("not_found", f"no activity {activity_id}")
        return activity

    async def exec(self, activity_id: str, text: str) -> str:
        activity = self.get(activity_id)
        try:
            commands = parse_exescript(text)
        except ExeScriptError as exc:
            raise ActivityApiError("bad_request", str(exc)) from exc
        if activity.terminated:
            raise ActivityApiError("conflict", f"activity {activity_id} is Terminated")
        result = await self._call(
            activity.provider_id, "activity.exec", {"activityId": activity_id, "exeScript": text}
        )
        batch_id = str(result["batchId"])
        activity.batch_sizes[batch_id] = len(commands)
        if self.store is not None:
            self.store.add_batch(activity_id, batch_id, len(commands))
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
        """The provider's answer while the activity lives; Terminated once it was destroyed, or once
        the provider no longer knows it (it forgets destroyed activities, and loses all on restart)."""
        activity = self.get(activity_id)
        if activity.terminated:
            return {"state": [TERMINATED, None]}
        try:
            state = await self._call(activity.provider_id, "activity.state", {"activityId": activity_id})
        except ActivityApiError as exc:
            if exc.code != "not_found":
                raise
            self._terminated(activity)
            return {"state": [TERMINATED, None]}
        current = state.get("state")
        if self.store is not None and isinstance(current, list) and current and isinstance(current[0], str):
            if current[0] == TERMINATED:
                self._terminated(activity)
            else:
                self.store.set_state(activity_id, current[0])
        return state

    async def usage(self, activity_id: str) -> dict[str, Any]:
        activity = self.get(activity_id)
        counters = await self._call(activity.provider_id, "activity.usage", {"activityId": activity_id})
        vector = self.agreements.usage_vector(activity.agreement_id)
        return {
            "currentUsage": [float(counters.get(USAGE_COUNTERS.get(name, ""), 0.0)) for name in vector],
            "timestamp": int(time.time()),
        }

    async def destroy(self, activity_id: str) -> None:
        """Destroy the activity on its provider; a provider that no longer knows it counts as done."""
        activity = self.get(activity_id)
        if activity.terminated:
            return
        try:
            await self._call(activity.provider_id, "activity.destroy", {"activityId": activity_id})
        except ActivityApiError as exc:
            if exc.code != "not_found":
                raise
        self._terminated(activity)

    def _terminated(self, activity: RemoteActivity) -> None:
        activity.terminated = True
        if self.store is not None:
            self.store.set_state(activity.activity_id, TERMINATED)
            # The store answers for it from now on; memory keeps only live activities.
            self.activities.pop(activity.activity_id, None)

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
