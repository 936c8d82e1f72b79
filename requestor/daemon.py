"""The requestor daemon: one process serving yagna's REST API to yapapi scripts.

:class:`RequestorDaemon` owns the node identity, the SQLite store (app keys, agreements, and
whatever the activity and payment parts add through :data:`MIGRATIONS`), the :class:`MarketClient`
session with the market node, the market service, and the aiohttp app embedded with ``AppRunner``
on ``host:port`` (port 0 picks a free one; :attr:`RequestorDaemon.port` tells which).

Plugging in another API (activity, payment)::

    daemon = RequestorDaemon(config, identity)
    daemon.add_api("/activity-api/v1", build_activity_api())   # before start()
    async with daemon: ...

and in its handlers ``daemon = request.config_dict[DAEMON_KEY]`` gives ``daemon.market_client``
(relay to providers), ``daemon.identity``, ``daemon.db`` and ``daemon.market``
(``daemon.market.agreement(id)`` for an agreement's signed record).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Sequence
from datetime import timedelta

from aiohttp import web

from market.client import MarketClient, RelayRouter
from market.core.clock import Clock, SystemClock
from market.core.identity import Identity
from market.core.storage import open_database
from market.protocol.errors import MarketUnavailableError
from payments.api import build_payment_api
from payments.exchange import PaymentExchange
from payments.factory import make_drivers, split_platforms
from payments.service import RequestorPayments
from payments.store import PaymentStore
from requestor.activities import ACTIVITIES_SCHEMA, ApprovedAgreements, RequestorActivities
from requestor.activity_api import build_activity_api
from requestor.app import add_api, build_root_app
from requestor.appkeys import APP_KEYS_SCHEMA, AppKeyStore
from requestor.config import RequestorConfig
from requestor.gftp.api import build_gftp_api
from requestor.gftp.share import FileShare
from requestor.market_api import API_PREFIX as MARKET_PREFIX
from requestor.market_api import build_market_api
from requestor.market_service import MARKET_SCHEMA, RequestorMarketService
from requestor.net_api import API_PREFIX as NET_PREFIX
from requestor.net_api import V2_PREFIX as NET_V2_PREFIX
from requestor.net_api import build_net_api
from requestor.net_service import RequestorNet

log = logging.getLogger(__name__)

MIGRATIONS: Sequence[str] = (APP_KEYS_SCHEMA, MARKET_SCHEMA, ACTIVITIES_SCHEMA)
"""The requestor database's schema, in order; append new migrations, never edit applied ones."""


def open_store(config: RequestorConfig) -> sqlite3.Connection:
    """Open (creating and migrating) the daemon's SQLite file; the CLI uses it without a daemon."""
    conn = open_database(config.database_path, MIGRATIONS)
    # App-key hashes and signed agreements: readable by this user only (SQLite gives its -wal and
    # -shm files the same mode).
    config.database_path.chmod(0o600)
    return conn


class RequestorDaemon:
    """A requestor node; ``async with RequestorDaemon(config, identity) as d: ...`` or start()/close()."""

    def __init__(self, config: RequestorConfig, identity: Identity, *, clock: Clock | None = None) -> None:
        self.config = config
        self.identity = identity
        self.node_id = identity.node_id
        self.clock = clock or SystemClock()
        self.db = open_store(config)
        self.app_keys = AppKeyStore(self.db)
        self.market_client = MarketClient(
            config.market_url, identity, config.node_name, request_timeout=config.market_request_timeout
        )
        self.market = RequestorMarketService(
            self.market_client,
            self.db,
            clock=self.clock,
            demand_ttl=timedelta(seconds=config.demand_ttl_seconds),
        )
        self.app = build_root_app(self.app_keys, self.node_id)
        self.app[DAEMON_KEY] = self
        add_api(self.app, MARKET_PREFIX, build_market_api(self.market))
        # Activities run on providers: their calls travel over the market relay.
        self.relay = RelayRouter(self.market_client)
        self.activities = RequestorActivities(
            self.relay, ApprovedAgreements(self.market), db=self.db, clock=self.clock
        )
        add_api(self.app, "/activity-api/v1", build_activity_api(self.activities))
        # Files yapapi's `gftp` publishes are served over the relay, only to providers this
        # requestor has an approved agreement with.
        self.files = FileShare(self.relay, self.node_id, authorize=self.market.authorize_provider)
        add_api(self.app, "/gftp-api/v1", build_gftp_api(self.files))
        # VPNs (in memory, as in yagna) and TCP tunnels into activities, over the relay.
        self.net = RequestorNet(self.relay)
        add_api(self.app, NET_PREFIX, build_net_api(self.net))
        add_api(self.app, NET_V2_PREFIX, build_net_api(self.net))
        # Payments: allocations, documents, and the drivers that pay on the configured platforms
        # (ERC-20 on a chain; dummy-* only when asked for, it pays nobody).
        self.payment_store = PaymentStore.open(config.data_dir / "payments.db")
        platforms = split_platforms(config.payment_platforms)
        self.payment_drivers = make_drivers(platforms, data_dir=config.data_dir, identity=identity)
        self.payments = RequestorPayments(
            self.payment_store,
            self.payment_drivers,
            identity=self.node_id,
            clock=self.clock,
            default_platform=platforms[0],
        )
        add_api(self.app, "/payment-api/v1", build_payment_api(self.payments))
        self.payment_exchange = PaymentExchange(
            self.relay, self.payments, retry_interval=0.5, signer=identity
        )
        self.payment_exchange.register()
        self.port: int = config.port
        self._runner: web.AppRunner | None = None
        self._closed = False

    def add_api(self, prefix: str, subapp: web.Application) -> None:
        """Mount another API sub-app (``/activity-api/v1``, ``/payment-api/v1``); before :meth:`start`."""
        add_api(self.app, prefix, subapp)

    async def start(self, market_timeout: float = 10.0) -> None:
        """Connect to the market node, start the services and listen; idempotent.

        A market node that cannot be reached within ``market_timeout`` does not stop the daemon: the
        client keeps reconnecting in the background and market calls answer 503 meanwhile (so the
        processes of a devnet may start in any order). A market node that refuses our key does.
        """
        if self._runner is not None:
            return
        await self.market_client.start()
        try:
            await self.market_client.wait_ready(market_timeout)
        except MarketUnavailableError:
            log.warning("no market node at %s yet; still trying", self.config.market_url)
        await self.market.start()
        await self.relay.start()
        for driver in self.payment_drivers:
            await driver.start()
        await self.payments.resume()
        await self.payment_exchange.start()
        runner = web.AppRunner(self.app, handle_signals=False, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.config.host, self.config.port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        log.info("requestor daemon %s listening on %s", self.node_id, self.url)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.payment_exchange.close()
        for driver in self.payment_drivers:
            await driver.close()
        await self.files.aclose()
        await self.net.close()
        await self.relay.close()
        await self.market.close()
        await self.market_client.close()
        self.db.close()
        self.payment_store.close()

    async def __aenter__(self) -> RequestorDaemon:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def url(self) -> str:
        """The root URL to give yapapi as ``YAGNA_API_URL``."""
        return f"http://{self.config.host}:{self.port}"

    async def serve_forever(self) -> None:
        """Run until cancelled (the CLI cancels on SIGINT/SIGTERM)."""
        await self.start()
        await asyncio.Event().wait()


DAEMON_KEY: web.AppKey[RequestorDaemon] = web.AppKey("requestor_daemon", RequestorDaemon)
"""``request.config_dict[DAEMON_KEY]`` is the daemon, from any mounted sub-app's handler."""
