"""The provider's side of the Activity API: activities served to requestors over the market relay.

A requestor daemon turns yapapi's Activity REST calls into relay calls on the provider that holds
the agreement (:mod:`market.client.relay`). :class:`ActivityHost` answers them: it checks that the
caller is the agreement's requestor, fetches and verifies the agreement's package, creates the exe
unit of the agreement's runtime, and runs ExeScript batches through :class:`~exeunits.activity.Activity`.
Results are long-polled (``activity.results``) and streamed events are pulled in order
(``activity.events``), so the requestor can serve both yagna's polling and its SSE stream.

A destroyed activity stays for a short grace (``destroyed_grace`` seconds) so that late state and
results queries still see it as Terminated, then it is dropped from memory; after that every call
naming it answers ``not_found`` (the requestor keeps its own record). Callbacks registered with
:meth:`ActivityHost.on_destroyed` see each activity once, right after its exe unit stopped, while its
final usage can still be read.

Relay methods (params → result):

* ``activity.create`` {agreementId} → {activityId}
* ``activity.exec`` {activityId, exeScript: list or JSON text} → {batchId}
* ``activity.results`` {activityId, batchId, commandIndex?, timeout} → {results: [ExeScriptCommandResult]}
* ``activity.events`` {activityId, batchId, after, timeout} → {events: [RuntimeEvent], finished}
* ``activity.state`` {activityId} → ActivityState wire object
* ``activity.usage`` {activityId} → {cpuSec, durationSec}
* ``activity.destroy`` {activityId} → {}
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from exeunits.activity import Activity, Batch, ExecutorSettings
from exeunits.errors import ActivityNotFoundError, ExeScriptError, ExeUnitError, ForbiddenError, PackageError
from exeunits.package import PackageRef, PackageStore
from exeunits.runtime.base import ActivitySpec, ResourceLimits, RuntimeFactory
from exeunits.script import parse_exescript
from exeunits.transfer import TransferService
from market.client.relay import RelayRouter
from market.core.ids import NodeId, new_id

log = logging.getLogger(__name__)

MAX_WAIT = 60.0  # a long-poll never holds a relay call longer than this
DESTROYED_GRACE = 30.0
"""Seconds a destroyed activity still answers (as Terminated) before it is forgotten."""
MAX_DESTROYED = 1000
"""At most this many destroyed activities are kept for their grace; older ones go first."""

DestroyedCallback = Callable[["HostedActivity"], Awaitable[None]]


@dataclass(frozen=True)
class AgreementTerms:
    """What an approved agreement lets its requestor run here."""

    agreement_id: str
    requestor_id: NodeId
    runtime: str
    package: str
    limits: ResourceLimits
    capabilities: frozenset[str] = frozenset()
    """The agreed offer's ``golem.runtime.capabilities`` (``vpn`` lets a deploy join a VPN)."""


class AgreementLookup(Protocol):
    """The provider's view of its agreements; only approved, live ones have terms."""

    def terms(self, agreement_id: str) -> AgreementTerms | None: ...


@dataclass
class HostedActivity:
    activity: Activity
    agreement_id: str
    requestor_id: NodeId
    workdir: Path


class ActivityHost:
    """Serves the ``activity.*`` relay methods for one provider; see the module docstring."""

    def __init__(
        self,
        router: RelayRouter,
        agreements: AgreementLookup,
        factories: Mapping[str, RuntimeFactory],
        packages: PackageStore,
        transfers: TransferService,
        workdir: Path,
        *,
        settings: ExecutorSettings | None = None,
        destroyed_grace: float = DESTROYED_GRACE,
        max_destroyed: int = MAX_DESTROYED,
    ) -> None:
        self.router = router
        self.agreements = agreements
        self.factories = dict(factories)
        self.packages = packages
        self.transfers = transfers
        self.workdir = workdir
        self.settings = settings or ExecutorSettings()
        self.activities: dict[str, HostedActivity] = {}
        self.destroyed_grace = destroyed_grace
        self.max_destroyed = max_destroyed
        self._destroyed: OrderedDict[str, asyncio.TimerHandle] = OrderedDict()
        self._destroying: dict[str, asyncio.Future[None]] = {}
        self._destroyed_callbacks: list[DestroyedCallback] = []

    def register(self) -> None:
        """Put the ``activity.*`` methods on the router."""
        self.router.handle("activity.create", self._create)
        self.router.handle("activity.exec", self._exec)
        self.router.handle("activity.results", self._results)
        self.router.handle("activity.events", self._events)
        self.router.handle("activity.state", self._state)
        self.router.handle("activity.usage", self._usage)
        self.router.handle("activity.destroy", self._destroy)

    def on_destroyed(self, callback: DestroyedCallback) -> None:
        """Call ``callback`` once per activity, right after its exe unit stopped (billing reads the
        final usage there)."""
        self._destroyed_callbacks.append(callback)

    async def close(self) -> None:
        """Destroy every activity still running (the provider is shutting down) and forget them."""
        for activity_id in list(self.activities):
            await self.destroy(activity_id)
        for handle in self._destroyed.values():
            handle.cancel()
        self._destroyed.clear()
        self.activities.clear()

    async def agreement_ended(self, agreement_id: str) -> None:
        """The agreement was terminated: its activities go with it."""
        for activity_id, hosted in list(self.activities.items()):
            if hosted.agreement_id == agreement_id:
                await self.destroy(activity_id)

    async def destroy(self, activity_id: str) -> None:
        """Stop the activity's exe unit and remove its folder; idempotent (a second call waits for
        the first). The activity is forgotten ``destroyed_grace`` seconds later."""
        hosted = self.activities.get(activity_id)
        if hosted is None:
            return
        running = self._destroying.get(activity_id)
        if running is not None:
            await asyncio.shield(running)
            return
        if activity_id in self._destroyed:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._destroying[activity_id] = done
        try:
            await hosted.activity.destroy()
        finally:
            with contextlib.suppress(OSError):
                await asyncio.to_thread(shutil.rmtree, hosted.workdir)
            self._destroying.pop(activity_id, None)
            self._retire(activity_id)
            done.set_result(None)
        for callback in self._destroyed_callbacks:
            try:
                await callback(hosted)
            except Exception:
                log.exception("destroyed-activity callback %r failed for %s", callback, activity_id)

    def _retire(self, activity_id: str) -> None:
        """Keep a destroyed activity for its grace, within the cap, then drop it."""
        loop = asyncio.get_running_loop()
        self._destroyed[activity_id] = loop.call_later(self.destroyed_grace, self._forget, activity_id)
        while len(self._destroyed) > self.max_destroyed:
            oldest, handle = self._destroyed.popitem(last=False)
            handle.cancel()
            self.activities.pop(oldest, None)

    def _forget(self, activity_id: str) -> None:
        self._destroyed.pop(activity_id, None)
        self.activities.pop(activity_id, None)

    def activities_of(self, agreement_id: str) -> list[HostedActivity]:
        return [h for h in self.activities.values() if h.agreement_id == agreement_id]

    # -- handlers ------------------------------------------------------------------------------------

    async def _create(self, sender: NodeId, params: dict[str, Any]) -> dict[str, Any]:
        agreement_id = _string(params, "agreementId")
        terms = self.agreements.terms(agreement_id)
        if terms is None:
            raise ActivityNotFoundError(f"no approved agreement {agreement_id} here")
        if terms.requestor_id != sender:
            raise ForbiddenError(f"agreement {agreement_id} is not yours")
        factory = self.factories.get(terms.runtime)
        if factory is None:
            raise ExeUnitError(f"runtime {terms.runtime!r} is not available on this provider")
        try:
            ref = PackageRef.parse(terms.package)
        except PackageError as exc:
            raise PackageError(f"the agreement's package reference is unusable: {exc}") from exc
        path = await self.packages.fetch(ref)
        activity_id = new_id()
        workdir = self.workdir / activity_id
        workdir.mkdir(parents=True)
        try:
            runtime = await factory.create(
                ActivitySpec(activity_id, path, ref.sha3, workdir, terms.limits, terms.capabilities)
            )
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        activity = Activity(activity_id, runtime, self.transfers, settings=self.settings)
        self.activities[activity_id] = HostedActivity(activity, agreement_id, sender, workdir)
        log.info("activity %s created for agreement %s", activity_id, agreement_id)
        return {"activityId": activity_id}

    async def _exec(self, sender: NodeId, params: dict[str, Any]) -> dict[str, Any]:
        hosted = self._own(sender, params)
        script = params.get("exeScript")
        if not isinstance(script, (str, list)):
            raise ExeScriptError("exeScript must be the ExeScript JSON text or its array")
        commands = parse_exescript(script)
        hosted.activity.check_plan(commands)  # refused whole, before anything runs
        batch = hosted.activity.exec(commands)
        return {"batchId": batch.batch_id}

    async def _results(self, sender: NodeId, params: dict[str, Any]) -> dict[str, Any]:
        batch = self._batch(sender, params)
        index = params.get("commandIndex")
        if index is not None and (not isinstance(index, int) or not 0 <= index < len(batch.commands)):
            raise ExeScriptError(
                f"commandIndex must be an index of the batch's {len(batch.commands)} commands"
            )
        try:
            results = await batch.wait_results(index, _timeout(params))
        except TimeoutError:
            raise ActivityTimeoutError(f"command {index} has not finished yet") from None
        return {"results": [r.to_wire() for r in results]}

    async def _events(self, sender: NodeId, params: dict[str, Any]) -> dict[str, Any]:
        batch = self._batch(sender, params)
        after = params.get("after", 0)
        if not isinstance(after, int) or after < 0:
            raise ExeScriptError("after must be a non-negative integer")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_timeout(params)):
                while len(batch.events) <= after and not batch.finished:
                    await batch.wait_changed()
        # A batch's last event comes before its last result, so "finished" means nothing more follows.
        return {"events": [e.to_wire() for e in batch.events[after:]], "finished": batch.finished}

    async def _state(self, sender: NodeId, params: dict[str, Any]) -> dict[str, Any]:
        return self._own(sender, params).activity.state_wire().to_wire()

    async def _usage(self, sender: NodeId, params: dict[str, Any]) -> dict[str, Any]:
        activity = self._own(sender, params).activity
        return {"cpuSec": await activity.cpu_seconds(), "durationSec": activity.duration_seconds()}

    async def _destroy(self, sender: NodeId, params: dict[str, Any]) -> dict[str, Any]:
        hosted = self._own(sender, params)
        await self.destroy(hosted.activity.activity_id)
        return {}

    # -- helpers -------------------------------------------------------------------------------------

    def _own(self, sender: NodeId, params: dict[str, Any]) -> HostedActivity:
        activity_id = _string(params, "activityId")
        hosted = self.activities.get(activity_id)
        if hosted is None:
            raise ActivityNotFoundError(f"no activity {activity_id}")
        if hosted.requestor_id != sender:
            raise ForbiddenError(f"activity {activity_id} is not yours")
        return hosted

    def _batch(self, sender: NodeId, params: dict[str, Any]) -> Batch:
        hosted = self._own(sender, params)
        batch_id = _string(params, "batchId")
        batch = hosted.activity.batches.get(batch_id)
        if batch is None:
            raise ActivityNotFoundError(f"no batch {batch_id} in activity {hosted.activity.activity_id}")
        return batch


class ActivityTimeoutError(ExeUnitError):
    """A long-poll for one command's result ran out (the REST edge answers 408)."""

    code = "timeout"


def _string(params: dict[str, Any], key: str) -> str:
    value = params.get(key)
    if not isinstance(value, str) or not value:
        raise ExeScriptError(f"{key} must be a non-empty string")
    return value


def _timeout(params: dict[str, Any]) -> float:
    value = params.get("timeout", 0.0)
    if not isinstance(value, (int, float)) or value < 0:
        raise ExeScriptError("timeout must be a non-negative number of seconds")
    return min(float(value), MAX_WAIT)
