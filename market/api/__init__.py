"""Wire models of yagna's Market API (``/market-api/v1``), shared by both daemons.

Shapes only, no behaviour: the requestor daemon serves them to yapapi, and the provider daemon's
API (later) serves the provider side of the same document. :mod:`market.api.models` follows the
ya-client specification and what the ``ya_market`` client validates (required fields, enums).
"""
