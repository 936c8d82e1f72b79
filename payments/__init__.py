"""Payments: allocations, debit notes and invoices, acceptance, and the drivers that pay.

Where this package sits in the flow:

1. A requestor script (yapapi) creates an **allocation** through the requestor daemon's Payment API
   (:mod:`payments.api`, served at ``/payment-api/v1``): a budget on one payment platform, checked
   against the account's balance but locked nowhere on chain.
2. While an activity runs, the provider daemon issues cumulative **debit notes**, and when the
   agreement ends an **invoice** (:class:`payments.service.ProviderPayments`). Each is written to
   SQLite with an outbox entry before the relay delivers it to the requestor daemon, which stores it
   (:class:`payments.service.RequestorPayments`) and raises a ``*ReceivedEvent`` that yapapi long-polls.
3. yapapi **accepts** a document with its exact amount and an allocation: the allocation's spent
   amount grows at acceptance time; an invoice (or a debit note with a ``paymentDueDate``) becomes a
   payment order, written before a :class:`payments.driver.PaymentDriver` is asked to pay it and
   resumed after a crash. The acceptance and the payment confirmation go back to the provider.
4. The provider **verifies** the payment through its driver, refuses double claims of one transfer,
   and marks the documents it covers **settled**.

Modules: :mod:`~payments.models` (wire models), :mod:`~payments.documents` (the document state
machine and acceptance arithmetic), :mod:`~payments.allocation` (allocations and exact money
arithmetic), :mod:`~payments.driver` (the driver protocol and the chain-less ``DummyDriver``),
:mod:`~payments.store` (SQLite), :mod:`~payments.service` (the façades), :mod:`~payments.api` (the
REST edge), :mod:`~payments.errors` (the exception tree).
"""
