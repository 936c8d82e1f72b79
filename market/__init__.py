"""The kernel and the market.

``market.core`` is the kernel every package imports (ids, errors, wire base, clock, identity,
config, storage, logging). ``market.props`` is the property and constraint language both sides of
a negotiation speak. ``market.protocol`` is the node-to-market-node WebSocket protocol,
``market.hub`` the market node that matches offers to demands and carries negotiations to signed
agreements, and ``market.client`` the daemon-side client the provider and requestor build on.
"""
