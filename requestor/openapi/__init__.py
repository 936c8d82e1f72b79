"""Committed OpenAPI documents of the requestor daemon's APIs (data files; see requestor.market_api)."""
