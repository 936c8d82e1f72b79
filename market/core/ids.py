"""Typed ids.

Node ids are Ethereum addresses (the address of the node's secp256k1 key), always held in their
lower-case ``0x`` form so that they compare and index as plain strings. Object ids (subscriptions,
proposals, agreements, sessions) are random 128-bit hex strings.
"""

from __future__ import annotations

import re
import secrets
from typing import NewType

NodeId = NewType("NodeId", str)
SubscriptionId = NewType("SubscriptionId", str)
ProposalId = NewType("ProposalId", str)
AgreementId = NewType("AgreementId", str)

_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


def node_id(value: str) -> NodeId:
    """Validate an address and return it as a canonical (lower-case) :data:`NodeId`."""
    if not isinstance(value, str) or not _ADDRESS.match(value):
        raise ValueError(f"not a node id (0x followed by 40 hex digits): {value!r}")
    return NodeId(value.lower())


def new_id() -> str:
    """A fresh random object id: 32 lower-case hex digits."""
    return secrets.token_hex(16)
