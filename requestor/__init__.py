"""The requestor daemon: the yagna-compatible REST API that yapapi 0.13.1 scripts talk to.

Flow: a script authenticates with an app key (:mod:`requestor.appkeys`) against the root app
(:mod:`requestor.app`: auth, error mapping, ``GET /me``); it publishes a demand and negotiates
through the Market API (:mod:`requestor.market_api` handlers over
:class:`~requestor.market_service.RequestorMarketService`, which speaks the market protocol through the
daemon's :class:`~market.client.MarketClient` session and keeps agreements in SQLite). The Activity,
Payment and Net APIs plug into the same root app (:mod:`requestor.net_api`: VPNs and TCP tunnels into
activities). :class:`~requestor.daemon.RequestorDaemon` wires it all
together and :mod:`requestor.cli` runs it (``golem requestor serve``, ``golem requestor app-key``).
"""
