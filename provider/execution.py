"""Running requestors' work for a :class:`~provider.daemon.ProviderDaemon`'s agreements.

:class:`ProviderExecution` attaches to a running daemon: it serves the Activity API over the relay
(:class:`~exeunits.host.ActivityHost`) for the daemon's approved agreements, with the exe-unit
runtimes of the runtimes the provider offers, a verified package cache and the transfer service, and
it destroys an agreement's activities when the agreement ends. Requestors reach their activities'
TCP ports through VPN tunnels (:class:`~exeunits.tunnels.VpnHost`). The daemon's negotiation knows
nothing of it; the CLI starts both.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from exeunits.errors import RuntimeUnavailableError
from exeunits.gftp import RelayGftpResolver
from exeunits.host import ActivityHost, AgreementTerms
from exeunits.package import PackageStore
from exeunits.runtime.base import MiB, ResourceLimits, RuntimeFactory
from exeunits.transfer import GftpResolver, TransferService
from exeunits.tunnels import VpnHost
from market.client import RelayRouter
from market.core.ids import NodeId
from market.protocol.messages import AgreementState
from provider.agreements import AgreementRecord
from provider.daemon import ProviderDaemon
from provider.status_api import ActivityInfo

log = logging.getLogger(__name__)


def default_factories(daemon: ProviderDaemon) -> dict[str, RuntimeFactory]:
    """One factory per runtime the provider is configured to offer."""
    factories: dict[str, RuntimeFactory] = {}
    for runtime in daemon.config.runtimes:
        if runtime == "vm":
            from exeunits.runtime.docker import DockerRuntimeFactory

            factories["vm"] = DockerRuntimeFactory(owner=f"provider-{daemon.node_id}")
        elif runtime == "wasmtime":
            from exeunits.runtime.wasm import WasmRuntimeFactory

            factories["wasmtime"] = WasmRuntimeFactory()
    return factories


def limits_of(offer_properties: Mapping[str, Any]) -> ResourceLimits:
    """The bounds an activity gets: the memory and threads the agreed offer promised."""
    memory_gib = offer_properties.get("golem.inf.mem.gib")
    threads = offer_properties.get("golem.inf.cpu.threads")
    defaults = ResourceLimits()
    return ResourceLimits(
        cpu_threads=float(threads)
        if isinstance(threads, (int, float)) and threads > 0
        else defaults.cpu_threads,
        memory_bytes=int(float(memory_gib) * 1024 * MiB)
        if isinstance(memory_gib, (int, float)) and memory_gib > 0
        else defaults.memory_bytes,
    )


class ProviderExecution:
    """Serves activities for ``daemon``'s agreements; ``async with ProviderExecution(daemon)``."""

    def __init__(
        self,
        daemon: ProviderDaemon,
        *,
        factories: Mapping[str, RuntimeFactory] | None = None,
        gftp: GftpResolver | None = None,
    ) -> None:
        self.daemon = daemon
        self.router = RelayRouter(daemon.market)
        if gftp is None:
            gftp = RelayGftpResolver(self.router)
        self.factories = dict(factories) if factories is not None else default_factories(daemon)
        self.host = ActivityHost(
            self.router,
            self,
            self.factories,
            PackageStore(daemon.config.data_dir / "packages"),
            TransferService(gftp=gftp),
            daemon.config.data_dir / "activities",
        )
        # TCP tunnels from requestors into their activities that joined a VPN.
        self.vpn = VpnHost(self.router, self.host)
        self._started: list[RuntimeFactory] = []
        daemon.attach_activities(self)

    async def start(self) -> None:
        for name, factory in list(self.factories.items()):
            try:
                await factory.start()
            except RuntimeUnavailableError as exc:
                # Offers for it stay out of reach: activities on it fail with this reason.
                log.error("runtime %s is unavailable: %s", name, exc)
                del self.factories[name]
                self.host.factories.pop(name, None)
                continue
            self._started.append(factory)
        self.host.register()
        self.vpn.register()
        self.daemon.on_agreement_ended(self._agreement_ended)
        await self.router.start()

    async def close(self) -> None:
        await self.vpn.close()
        await self.host.close()
        await self.router.close()
        for factory in self._started:
            await factory.close()
        self._started.clear()

    async def __aenter__(self) -> ProviderExecution:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def live_activities(self) -> list[ActivityInfo]:
        """The activities the exe-unit host holds (running, or destroyed moments ago)."""
        return [
            ActivityInfo(
                activity_id=hosted.activity.activity_id,
                agreement_id=hosted.agreement_id,
                state=hosted.activity.state,
                duration_sec=round(hosted.activity.duration_seconds(), 3),
                cpu_sec=None,
                cost=None,
                ended_at=None,
            )
            for hosted in self.host.activities.values()
        ]

    def terms(self, agreement_id: str) -> AgreementTerms | None:
        """:class:`~exeunits.host.AgreementLookup`: what an approved agreement lets its requestor run."""
        record = self.daemon.agreement(agreement_id)
        if record is None or record.state is not AgreementState.APPROVED:
            return None
        agreement = record.agreement
        package = agreement.demand.properties.get("golem.srv.comp.task_package")
        runtime = agreement.offer.properties.get("golem.runtime.name")
        capabilities = agreement.offer.properties.get("golem.runtime.capabilities")
        if not isinstance(package, str) or not isinstance(runtime, str):
            return None
        return AgreementTerms(
            agreement_id,
            NodeId(agreement.demand.requestor_id),
            runtime,
            package,
            limits_of(agreement.offer.properties),
            frozenset(c for c in capabilities if isinstance(c, str))
            if isinstance(capabilities, list)
            else frozenset(),
        )

    async def _agreement_ended(self, record: AgreementRecord) -> None:
        await self.host.agreement_ended(record.agreement_id)
