"""Debit-note deadlines: when a provider may break an agreement, and when a note is payable.

Pure functions over the debit notes the provider stored (their status is what the requestor did
with them), so the check gives the same answer after a restart. Two deadlines follow from each note
sent (golem-architecture GAP-3, ya-provider's ``DeadlineElapsed``):

* with ``golem.com.payment.debit-notes.accept-timeout?`` negotiated, the requestor must accept the
  note within that many seconds of its issue, or the provider breaks the agreement with
  ``golem.provider.code`` = ``DebitNotesDeadline``;
* a note carrying a ``paymentDueDate`` must be settled by then, or the code is ``DebitNoteNotPaid``.

Debit notes are cumulative per activity, so a later note of the same activity that was accepted
(or settled) covers the earlier ones.

Mid-agreement payments: a note is made payable only once ``payment-timeout-sec?`` has passed since
the activity's last payable note (or since the activity started), and is then due that many seconds
after its issue, as ya-provider does; yapapi breaks agreements whose notes are payable more often.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from payments.models import DebitNote, DocumentStatus

PROVIDER_CODE = "golem.provider.code"


class BreakCode(StrEnum):
    """Why a provider breaks an agreement (the ``golem.provider.code`` of the reason)."""

    DEBIT_NOTES_DEADLINE = "DebitNotesDeadline"
    """A debit note was not accepted within the negotiated accept timeout."""
    DEBIT_NOTE_NOT_PAID = "DebitNoteNotPaid"
    """A payable debit note was not settled by its payment due date."""


@dataclass(frozen=True)
class Breach:
    """A deadline that passed: which note, which deadline, and the code to terminate with."""

    code: BreakCode
    debit_note_id: str
    activity_id: str
    deadline: datetime

    def reason(self) -> dict[str, Any]:
        """The termination Reason object (``{"message", "golem.provider.code"}``)."""
        what = "was not accepted" if self.code is BreakCode.DEBIT_NOTES_DEADLINE else "was not paid"
        message = (
            f"debit note {self.debit_note_id} (activity {self.activity_id}) {what} "
            f"by {self.deadline.isoformat()}"
        )
        return {"message": message, PROVIDER_CODE: self.code.value}


@dataclass(frozen=True)
class DeadlineCheck:
    """The outcome of one check: a breach (the earliest), or when the next deadline falls."""

    breach: Breach | None
    next_deadline: datetime | None


_ACCEPTED = frozenset({DocumentStatus.ACCEPTED, DocumentStatus.SETTLED})


def check_deadlines(
    notes: Iterable[DebitNote],
    accept_timeout_sec: float | None,
    now: datetime,
    *,
    resumed: tuple[datetime, datetime] | None = None,
) -> DeadlineCheck:
    """Check an agreement's debit notes (any order) against their deadlines at ``now``.

    Without ``accept_timeout_sec`` there is no acceptance deadline; a note without
    ``paymentDueDate`` has no payment deadline. ``resumed = (started, until)`` is for a provider
    that (re)started at ``started``: notes issued before then get at least until ``until``, since
    the requestor's answers to them may still be waiting to reach us.
    """
    by_activity: defaultdict[str, list[DebitNote]] = defaultdict(list)
    for note in notes:
        by_activity[note.activity_id].append(note)
    breaches: list[Breach] = []
    pending: list[datetime] = []
    accept_window = timedelta(seconds=accept_timeout_sec) if accept_timeout_sec is not None else None
    for activity_notes in by_activity.values():
        activity_notes.sort(key=lambda n: n.timestamp)
        accepted_from = _last_index(activity_notes, _ACCEPTED)
        settled_from = _last_index(activity_notes, frozenset({DocumentStatus.SETTLED}))
        for index, note in enumerate(activity_notes):
            deadlines: list[tuple[BreakCode, datetime]] = []
            if accept_window is not None and index > accepted_from:
                deadlines.append((BreakCode.DEBIT_NOTES_DEADLINE, note.timestamp + accept_window))
            if note.payment_due_date is not None and index > settled_from:
                deadlines.append((BreakCode.DEBIT_NOTE_NOT_PAID, note.payment_due_date))
            for code, deadline in deadlines:
                if resumed is not None and note.timestamp < resumed[0]:
                    deadline = max(deadline, resumed[1])
                if deadline <= now:
                    breaches.append(Breach(code, note.debit_note_id, note.activity_id, deadline))
                else:
                    pending.append(deadline)
    breach = min(breaches, key=lambda b: b.deadline) if breaches else None
    return DeadlineCheck(breach, min(pending) if pending else None)


def payment_due_date(
    last_payable: datetime, payment_timeout_sec: float | None, now: datetime
) -> datetime | None:
    """The ``paymentDueDate`` for a note issued ``now``, or None when it is not payable.

    ``last_payable`` is when the activity's last payable note was issued (its start, if none was).
    """
    if payment_timeout_sec is None:
        return None
    window = timedelta(seconds=payment_timeout_sec)
    if last_payable + window > now:
        return None
    return now + window


def _last_index(notes: list[DebitNote], statuses: frozenset[DocumentStatus]) -> int:
    """Index of the latest note in one of ``statuses`` (it covers every earlier one), or -1."""
    for index in range(len(notes) - 1, -1, -1):
        if notes[index].status in statuses:
            return index
    return -1
