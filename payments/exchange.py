"""Carrying payment messages between provider and requestor over the market relay.

Each side writes what it owes the other party into its outbox in the same transaction as the change
that caused it (:mod:`payments.service`). :class:`PaymentExchange` delivers that outbox in order with
the relay method ``payments.deliver`` and marks an item delivered only once the peer has taken it,
so a crash or a dropped connection only delays a message, never loses it. The same method hands
what arrives to the local side, after checking that the sender is the party the message speaks for.

A payment confirmation is also signed by the payer's key (EIP-191 over the canonical JSON of its
body) and the provider checks that signature before it looks at the chain: the confirmation is
a statement the payer stands behind, whichever way it travelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from pydantic import ValidationError

from market.client.relay import RelayRouter, RelayRpcError
from market.core.errors import GolemError, SignatureError
from market.core.identity import Identity, verify_signature
from market.core.ids import NodeId
from payments.documents import DocumentKind
from payments.errors import InvalidInputError
from payments.models import Acceptance, DebitNote, Invoice, Payment, Rejection
from payments.service import ProviderPayments, RequestorPayments

log = logging.getLogger(__name__)

METHOD = "payments.deliver"


class PaymentExchange:
    """Delivers one side's outbox and receives the other side's; ``async with`` or start()/close()."""

    def __init__(
        self,
        router: RelayRouter,
        side: RequestorPayments | ProviderPayments,
        *,
        retry_interval: float = 1.0,
        signer: Identity | None = None,
    ) -> None:
        self.router = router
        self.side = side
        self.signer = signer
        """Signs outgoing payment confirmations (the requestor's identity; the payer)."""
        self.retry_interval = retry_interval
        self.refused_backoff = 30.0
        self._wake = asyncio.Event()
        self._pump: asyncio.Task[None] | None = None
        self._refused_until: dict[int, float] = {}

    def register(self) -> None:
        self.router.handle(METHOD, self._receive)

    async def start(self) -> None:
        if self._pump is None:
            self._pump = asyncio.create_task(self._deliver_forever(), name="payments-outbox")

    async def close(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
            self._pump = None

    async def __aenter__(self) -> PaymentExchange:
        self.register()
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def wake(self) -> None:
        """Something was queued: deliver now rather than at the next retry."""
        self._wake.set()

    # -- sending -------------------------------------------------------------------------------------

    async def _deliver_forever(self) -> None:
        while True:
            await self.deliver_pending()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.retry_interval):
                    await self._wake.wait()
            self._wake.clear()

    async def deliver_pending(self) -> int:
        """Try every undelivered item once, oldest first; returns how many got through."""
        delivered = 0
        now = asyncio.get_running_loop().time()
        for seq, kind, document_id, body in self.side.undelivered():
            if self._refused_until.get(seq, 0.0) > now:
                continue
            peer = self._peer(kind, document_id, body)
            if peer is None:
                log.error("no recipient known for %s %s; it stays queued", kind, document_id)
                continue
            params: dict[str, Any] = {"kind": kind, "documentId": document_id, "body": body}
            if kind == "Payment":
                if self.signer is None:
                    log.error("payment %s cannot be confirmed: no key to sign it with", document_id)
                    continue
                params["signature"] = self.signer.sign_text(canonical(body))
            try:
                await self.router.call(peer, METHOD, params)
            except RelayRpcError as exc:
                log.info("%s %s not delivered to %s yet: %s", kind, document_id, peer, exc)
                if exc.code in ("not_connected", "timeout", "closed", "not_found"):
                    break  # keep the order: retry from here later
                # The peer refused it: a bug or a dispute, not a hiccup. Keep it, but ask again later.
                log.warning(
                    "%s %s refused by %s: %s; retrying in %.0f s",
                    kind,
                    document_id,
                    peer,
                    exc,
                    self.refused_backoff,
                )
                self._refused_until[seq] = now + self.refused_backoff
                continue
            self._refused_until.pop(seq, None)
            self.side.mark_delivered(seq)
            delivered += 1
        return delivered

    def _peer(self, kind: str, document_id: str, body: dict[str, Any]) -> NodeId | None:
        side = self.side
        try:
            if kind in ("DebitNote", "Invoice"):
                return NodeId(str(body["recipientId"]))
            if kind == "InvoiceCancelled":
                return NodeId(side.invoice(document_id).recipient_id)
            if kind == "DebitNoteAccepted":
                return NodeId(side.debit_note(document_id).issuer_id)
            if kind in ("InvoiceAccepted", "InvoiceRejected"):
                return NodeId(side.invoice(document_id).issuer_id)
            if kind == "Payment":
                return NodeId(str(body["payeeId"]))
        except (KeyError, GolemError):
            return None
        return None

    # -- receiving -----------------------------------------------------------------------------------

    async def _receive(self, sender: NodeId, params: dict[str, Any]) -> dict[str, Any]:
        kind, document_id, body = params.get("kind"), params.get("documentId"), params.get("body")
        if not isinstance(kind, str) or not isinstance(document_id, str) or not isinstance(body, dict):
            raise InvalidInputError("payments.deliver takes {kind, documentId, body}")
        signature = params.get("signature")
        try:
            await self._take(sender, kind, document_id, body, signature)
        except ValidationError as exc:
            raise InvalidInputError(f"malformed {kind}: {exc.errors()[0]['msg']}") from exc
        return {}

    async def _take(
        self, sender: NodeId, kind: str, document_id: str, body: dict[str, Any], signature: object
    ) -> None:
        side = self.side
        if isinstance(side, RequestorPayments):
            if kind == "DebitNote":
                note = DebitNote.model_validate(body)
                _from(sender, note.issuer_id, kind)
                side.receive_debit_note(note)
            elif kind == "Invoice":
                invoice = Invoice.model_validate(body)
                _from(sender, invoice.issuer_id, kind)
                side.receive_invoice(invoice)
            elif kind == "InvoiceCancelled":
                _from(sender, side.invoice(document_id).issuer_id, kind)
                side.receive_cancellation(DocumentKind.INVOICE, document_id)
            else:
                raise InvalidInputError(f"a requestor does not take {kind} messages")
        else:
            if kind == "DebitNoteAccepted":
                _from(sender, side.debit_note(document_id).recipient_id, kind)
                side.record_acceptance(DocumentKind.DEBIT_NOTE, document_id, Acceptance.model_validate(body))
            elif kind == "InvoiceAccepted":
                _from(sender, side.invoice(document_id).recipient_id, kind)
                side.record_acceptance(DocumentKind.INVOICE, document_id, Acceptance.model_validate(body))
            elif kind == "InvoiceRejected":
                _from(sender, side.invoice(document_id).recipient_id, kind)
                side.record_rejection(DocumentKind.INVOICE, document_id, Rejection.model_validate(body))
            elif kind == "Payment":
                payment = Payment.model_validate(body)
                _from(sender, payment.payer_id, kind)
                if not isinstance(signature, str):
                    raise InvalidInputError(f"payment {document_id} is not signed by its payer")
                try:
                    verify_signature(canonical(body), signature, NodeId(payment.payer_id.lower()))
                except SignatureError as exc:
                    raise InvalidInputError(f"payment {document_id}: bad payer signature ({exc})") from None
                await side.record_payment(payment)
            else:
                raise InvalidInputError(f"a provider does not take {kind} messages")


def canonical(body: dict[str, Any]) -> str:
    """The text a payment confirmation's signature covers: its body as sorted, compact JSON."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _from(sender: NodeId, expected: str, kind: str) -> None:
    if sender.lower() != expected.lower():
        raise InvalidInputError(f"{kind} must come from {expected}, not {sender}")
