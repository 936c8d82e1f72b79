"""The provider daemon (``golem provider run``): advertise hardware, negotiate, sign agreements.

The flow, in the order things happen:

1. :mod:`provider.hardware` measures what the machine can give (threads, memory, free storage of the
   data dir), capped by :class:`provider.config.ProviderConfig`.
2. :mod:`provider.offers` turns hardware, the enabled runtimes and their pricing
   (:mod:`provider.presets`) into one offer per runtime, with the standard property names yapapi reads.
3. :class:`provider.daemon.ProviderDaemon` publishes the offers through a
   :class:`market.client.MarketClient` and re-publishes them before they expire.
4. Each counter-proposal from a requestor goes through the composable negotiator
   (:mod:`provider.negotiator`): subnet, deny list, payment platform, capacity, expiration window and
   payment terms each accept, adjust or reject it.
5. :mod:`provider.agreements` is the pure negotiation/agreement state: events in, effects out. The
   daemon performs the effects (counter, reject, approve), persists agreements in
   :mod:`provider.store` and serves them on the status API (:mod:`provider.status_api`).
6. Approved agreements are handed to whatever is registered with
   :meth:`ProviderDaemon.on_agreement_approved <provider.daemon.ProviderDaemon.on_agreement_approved>`:
   the seam where activities, exe units and billing plug in.
"""
