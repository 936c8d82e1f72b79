"""What the blueprint scripts tell their user about a run, from yapapi's events: the invoices
accepted and what they cost, and failures in one readable line.

yapapi 0.13.1 emits an ``InvoiceAccepted`` event per invoice (its amount a decimal string), so
:class:`Costs`, added with ``golem.add_event_consumer``, sums them; the invoices arrive while the
``Golem`` context closes, so read it after the ``async with`` block. :func:`reason` turns an
exception from yapapi's REST clients (status, reason, headers and a JSON body on several lines)
into the status and the daemon's message.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal

from yapapi.events import Event, InvoiceAccepted


@dataclass
class Costs:
    """The invoices a run accepted: how many, and their total."""

    total: Decimal = Decimal(0)
    invoices: int = 0
    by_provider: dict[str, Decimal] = field(default_factory=dict)

    def __call__(self, event: Event) -> None:
        if isinstance(event, InvoiceAccepted):
            amount = Decimal(event.amount)
            self.total += amount
            self.invoices += 1
            name = event.provider_info.name or event.provider_id
            self.by_provider[name] = self.by_provider.get(name, Decimal(0)) + amount

    def __str__(self) -> str:
        return f"cost: {self.total.normalize():f} GLM ({self.invoices} invoice(s) accepted)"


def reason(exc: BaseException | None) -> str:
    """One line saying why ``exc`` happened: for an API error its status and the daemon's message."""
    if exc is None:
        return "no reason given"
    status, body = getattr(exc, "status", None), getattr(exc, "body", None)
    if status is not None and body:
        try:
            message = json.loads(body).get("message")
        except (ValueError, AttributeError):
            message = None
        return f"HTTP {status}: {message or str(body).strip()[:200]}"
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
