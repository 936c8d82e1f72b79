"""How the ERC-20 sender paces itself: payment cycles, batching, gas margin, polling, replacement."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from decimal import Decimal, InvalidOperation

from payments.errors import InvalidInputError

MAX_BATCH_LIMIT = 256
"""The batch contract's own limit on entries per call (``MAX_ENTRIES`` in ``MultiTransfer.vy``)."""


@dataclass(frozen=True)
class SenderSettings:
    """Timing and sizing of the requestor-side sender; every field can come from the environment."""

    cycle_interval: float = 60.0
    """Seconds between payment cycles: orders accumulate and are paid together, summed per payee."""
    due_margin: float = 30.0
    """A cycle runs this many seconds before the nearest order's due date, if that comes first."""
    max_batch: int = 10
    """Payees per batch transaction (Golem's ``max-at-once``)."""
    gas_margin: int = 20_000
    """Added to the node's gas estimate: the estimate is exact for the state it ran against, and a
    payee's balance going from zero to non-zero in between costs more."""
    poll_interval: float = 0.2
    """Seconds between looks at the chain while something is in flight."""
    replacement_timeout: float = 60.0
    """An unmined transaction this old is re-sent with the same nonce and fees raised by 10 %."""
    retry_interval: float = 10.0
    """Seconds before a cycle that could not send (funds short, base fee over the cap) is tried again."""

    def __post_init__(self) -> None:
        for name in (
            "cycle_interval",
            "due_margin",
            "poll_interval",
            "replacement_timeout",
            "retry_interval",
        ):
            value = getattr(self, name)
            if not value >= 0 or value == float("inf"):
                raise InvalidInputError(f"{name} must be a non-negative number of seconds, not {value!r}")
        if self.poll_interval <= 0:
            raise InvalidInputError("poll_interval must be positive")
        if not 1 <= self.max_batch <= MAX_BATCH_LIMIT:
            raise InvalidInputError(
                f"max_batch must be between 1 and {MAX_BATCH_LIMIT}, not {self.max_batch}"
            )
        if self.gas_margin < 0:
            raise InvalidInputError(f"gas_margin must not be negative, not {self.gas_margin}")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SenderSettings:
        """Defaults overridden by ``GOLEM_PAYMENT_*`` variables (``env`` defaults to os.environ).

        ``GOLEM_PAYMENT_CYCLE_SECS`` (else yagna's ``ERC20_SENDOUT_INTERVAL_SECS``),
        ``GOLEM_PAYMENT_DUE_MARGIN_SECS``, ``GOLEM_PAYMENT_MAX_BATCH``, ``GOLEM_PAYMENT_GAS_MARGIN``,
        ``GOLEM_PAYMENT_POLL_SECS``, ``GOLEM_PAYMENT_REPLACEMENT_TIMEOUT_SECS``,
        ``GOLEM_PAYMENT_RETRY_SECS``. A malformed value is an error naming the variable.
        """
        env = os.environ if env is None else env
        variables = {
            "cycle_interval": ("GOLEM_PAYMENT_CYCLE_SECS", "ERC20_SENDOUT_INTERVAL_SECS"),
            "due_margin": ("GOLEM_PAYMENT_DUE_MARGIN_SECS",),
            "max_batch": ("GOLEM_PAYMENT_MAX_BATCH",),
            "gas_margin": ("GOLEM_PAYMENT_GAS_MARGIN",),
            "poll_interval": ("GOLEM_PAYMENT_POLL_SECS",),
            "replacement_timeout": ("GOLEM_PAYMENT_REPLACEMENT_TIMEOUT_SECS",),
            "retry_interval": ("GOLEM_PAYMENT_RETRY_SECS",),
        }
        types = {f.name: f.type for f in fields(cls)}
        changes: dict[str, float | int] = {}
        for name, names in variables.items():
            variable = next((v for v in names if env.get(v, "").strip()), None)
            if variable is None:
                continue
            text = env[variable].strip()
            if types[name] in (int, "int"):
                if not text.isdigit():
                    raise InvalidInputError(f"{variable}={text!r} must be a whole number")
                changes[name] = int(text)
            else:
                try:
                    changes[name] = float(Decimal(text))
                except InvalidOperation:
                    raise InvalidInputError(f"{variable}={text!r} is not a number of seconds") from None
        try:
            return cls(**changes)  # type: ignore[arg-type]
        except InvalidInputError as exc:
            raise InvalidInputError(f"payment sender settings from the environment: {exc}") from None
