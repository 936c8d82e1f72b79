"""The daemon-side market client the provider and requestor daemons build on."""

from market.client.client import BinaryMessage, MarketClient, verify_agreement, verify_termination
from market.client.relay import RelayRouter, RelayRpcError

__all__ = [
    "BinaryMessage",
    "MarketClient",
    "RelayRouter",
    "RelayRpcError",
    "verify_agreement",
    "verify_termination",
]
