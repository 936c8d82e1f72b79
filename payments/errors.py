"""The payments package's exception tree.

Every error is a :class:`PaymentError` (itself a :class:`~market.core.errors.GolemError`). The
classes say *what* went wrong in domain terms; the REST edge (:mod:`payments.api`) is the one place
that turns them into HTTP statuses, following what yagna answers in each case.
"""

from __future__ import annotations

from decimal import Decimal

from market.core.errors import GolemError


class PaymentError(GolemError):
    """Root of the payments package's errors."""


class InvalidInputError(PaymentError):
    """A request names a value the payment layer cannot use (a malformed amount, a past timeout...)."""


class NotFoundError(PaymentError):
    """No debit note, invoice, allocation or payment with that id is known to this node."""


class InvalidStateError(PaymentError):
    """The object exists but its state forbids the operation (accepting a cancelled invoice...)."""


class AmountMismatchError(PaymentError):
    """An acceptance names an amount that differs from the document's amount (compared as decimals)."""

    def __init__(self, document_id: str, expected: Decimal, given: Decimal) -> None:
        super().__init__(
            f"Invalid amount accepted for {document_id}: "
            f"the document asks {expected:f}, the acceptance says {given:f}"
        )
        self.document_id = document_id
        self.expected = expected
        self.given = given


class AllocationError(PaymentError):
    """An allocation cannot be created or used as asked (unknown platform, bad address...)."""

    def __init__(self, message: str, *, platform: str | None = None, address: str | None = None) -> None:
        super().__init__(message)
        self.platform = platform
        self.address = address


class InsufficientFundsError(AllocationError):
    """There is not enough money: an allocation larger than the account holds, or an acceptance
    larger than what the allocation has left. Nothing is changed when this is raised."""

    def __init__(
        self,
        message: str,
        *,
        requested: Decimal,
        available: Decimal,
        platform: str | None = None,
        address: str | None = None,
    ) -> None:
        super().__init__(message, platform=platform, address=address)
        self.requested = requested
        self.available = available


class AllocationReleasedError(AllocationError):
    """The allocation was released (or expired); it can no longer be read or spent from."""


class NotSupportedError(PaymentError):
    """An operation yagna does not implement either (rejecting or cancelling a debit note)."""


class DriverError(PaymentError):
    """A payment driver failed to schedule, send or verify a payment; the document stays owed."""


class PaymentRejectedError(InvalidInputError):
    """A payment confirmation that the chain (or the driver) does not back; the message says why."""


class DocumentNotAcceptableError(InvalidStateError):
    """An acceptance yagna answers 400 to: the document is Cancelled or Failed, or an invoice is smaller
    than what its agreement's debit notes already committed."""
