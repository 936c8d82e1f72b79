"""What agreement signatures cover.

Both parties sign the same canonical text: the agreement id and the Keccak-256 digest of the
agreement's content (demand, offer, validity) serialised as compact JSON with sorted keys. The
market node only carries the signatures; it cannot forge one, and either party can re-check the
other's at any time. Terminations are signed too, so a party cannot deny having ended an agreement.
"""

from __future__ import annotations

import json
from typing import Any

from eth_utils.crypto import keccak

from market.core.clock import rfc3339
from market.protocol.messages import Agreement, Party


def agreement_content(agreement: Agreement) -> dict[str, Any]:
    """The fields both parties commit to; state, timestamps of events and signatures excluded."""
    return {
        "agreementId": agreement.agreement_id,
        "demand": agreement.demand.to_wire(),
        "offer": agreement.offer.to_wire(),
        "validTo": rfc3339(agreement.valid_to),
    }


def agreement_digest(agreement: Agreement) -> str:
    canonical = json.dumps(
        agreement_content(agreement), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return "0x" + keccak(text=canonical).hex()


def agreement_signing_text(agreement: Agreement) -> str:
    """The text a party signs (EIP-191) to propose or approve ``agreement``."""
    return f"golem agreement {agreement.agreement_id} {agreement_digest(agreement)}"


def termination_signing_text(agreement_id: str, terminator: Party, reason: dict[str, Any] | None) -> str:
    reason_json = json.dumps(reason or {}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = "0x" + keccak(text=reason_json).hex()
    return f"golem agreement-terminated {agreement_id} by {terminator.value} {digest}"
