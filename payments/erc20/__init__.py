"""The ERC-20 payment driver: GLM on EVM networks, paid in batched cycles and verified from receipts.

Requestor side: the payment service hands each accepted document's payment to
:meth:`Erc20Driver.schedule_payment`; the driver stores the order, pays everything owed per payee
in periodic cycles (a plain ``transfer`` for one payee, the batch contract for several, run early
enough for the nearest due date), stores every signed transaction before broadcasting it, keeps it
alive until mined (re-broadcast, fee-bumped replacement) and calls the service back with the
transaction hash once it is confirmed. Provider side: :meth:`Erc20Driver.verify_payment` checks a
claimed transaction's receipt and ``Transfer`` logs.

Modules: :mod:`~payments.erc20.driver` (the façade), :mod:`~payments.erc20.sender` (cycles, nonces,
broadcasting), :mod:`~payments.erc20.batching` and :mod:`~payments.erc20.fees` (pure planning and fee
rules), :mod:`~payments.erc20.calls` (calldata and log decoding), :mod:`~payments.erc20.chain`
(JSON-RPC), :mod:`~payments.erc20.store` (SQLite), :mod:`~payments.erc20.verify` (the provider's
check), :mod:`~payments.erc20.settings` and :mod:`~payments.erc20.units`.
"""

from payments.erc20.driver import Erc20Driver
from payments.erc20.settings import SenderSettings

__all__ = ["Erc20Driver", "SenderSettings"]
