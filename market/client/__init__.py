"""The daemon-side market client the provider and requestor daemons build on."""

from market.client.client import BinaryMessage, MarketClient, verify_agreement, verify_termination

__all__ = ["BinaryMessage", "MarketClient", "verify_agreement", "verify_termination"]
