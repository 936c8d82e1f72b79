"""The provider daemon's settings (defaults → ``provider.toml`` → ``GOLEM_PROVIDER_*`` → flags).

Prices are GLM as :class:`~decimal.Decimal` per hour of each usage counter plus a start price; the
offer builder converts them to the per-second float coefficients yapapi expects.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from market.core.config import data_dir

RuntimeName = Literal["vm", "wasmtime"]
RUNTIMES: tuple[RuntimeName, ...] = ("vm", "wasmtime")

CONFIG_FILE_NAME = "provider.toml"
ENV_PREFIX = "GOLEM_PROVIDER_"


def default_data_dir() -> Path:
    """``$GOLEM_DATA_DIR/provider`` (the provider's keystore, database, presets and config)."""
    return data_dir() / "provider"


class Pricing(BaseModel):
    """A linear price in GLM: per CPU-hour, per hour of wall time, and once at the start."""

    model_config = ConfigDict(extra="forbid")

    cpu_per_hour: Decimal = Field(default=Decimal("0.1"), ge=0)
    duration_per_hour: Decimal = Field(default=Decimal("0.02"), ge=0)
    start_price: Decimal = Field(default=Decimal("0"), ge=0)


class ProviderConfig(BaseModel):
    """Settings of ``golem provider run``; every field can be set in ``[provider]`` of provider.toml."""

    model_config = ConfigDict(extra="forbid")

    market_url: str = "ws://127.0.0.1:7470/ws"
    status_host: str = "127.0.0.1"
    status_port: int | None = Field(default=7466, ge=0, le=65535)
    """Port of the status API; 0 picks a free one, ``None`` serves none."""
    data_dir: Path = Field(default_factory=default_data_dir)
    node_name: str = Field(default="provider", min_length=1, max_length=64)
    subnet: str = Field(default="public", min_length=1)
    runtimes: list[RuntimeName] = Field(default_factory=lambda: list(RUNTIMES), min_length=1)
    payment_platform: str = "erc20-holesky-tglm"
    pricing: dict[RuntimeName, Pricing] = Field(
        default_factory=lambda: {name: Pricing() for name in RUNTIMES}
    )
    active_presets: list[str] = Field(default_factory=list)
    """Named presets (provider/presets.json) to offer; empty: one offer per runtime priced by ``pricing``."""

    max_threads: int | None = Field(default=None, ge=1)
    max_memory_gib: float | None = Field(default=None, gt=0)
    max_storage_gib: float | None = Field(default=None, gt=0)

    max_concurrent_agreements: int = Field(default=1, ge=1)
    min_agreement_expiration_sec: int = Field(default=300, ge=0)
    """A demand's ``golem.srv.comp.expiration`` must be at least this far away."""
    max_agreement_expiration_sec: int = Field(default=12 * 3600, ge=1)
    """... and at most this far, unless mid-agreement payments are negotiated."""
    max_agreement_expiration_with_payments_sec: int = Field(default=30 * 24 * 3600, ge=1)
    """The limit when the requestor accepted a payment timeout (mid-agreement payments)."""

    debit_note_interval_sec: int = Field(default=120, ge=1)
    min_debit_note_interval_sec: int = Field(default=60, ge=1)
    max_debit_note_interval_sec: int = Field(default=3600, ge=1)
    payment_timeout_sec: int = Field(default=120, ge=1)
    min_payment_timeout_sec: int = Field(default=60, ge=1)
    max_payment_timeout_sec: int = Field(default=24 * 3600, ge=1)
    debit_note_accept_timeout_sec: int = Field(default=240, ge=1)
    min_debit_note_accept_timeout_sec: int = Field(default=30, ge=1)
    max_debit_note_accept_timeout_sec: int = Field(default=3600, ge=1)

    offer_lifetime_sec: int = Field(default=3600, ge=2)
    """Offers are published for this long and re-published when 80% of it has passed."""
    deny_list: list[str] = Field(default_factory=list)
    """Requestor node ids whose proposals and agreements are rejected."""

    @field_validator("payment_platform")
    @classmethod
    def _platform_has_no_dots(cls, value: str) -> str:
        # yapapi finds the platform as key.split(".")[4] of golem.com.payment.platform.<p>.address.
        if not value or "." in value:
            raise ValueError("a payment platform name is non-empty and has no dots")
        return value

    @field_validator("deny_list")
    @classmethod
    def _lower_ids(cls, value: list[str]) -> list[str]:
        return [v.lower() for v in value]

    @model_validator(mode="after")
    def _bounds_are_ordered(self) -> ProviderConfig:
        for name in ("debit_note_interval", "payment_timeout", "debit_note_accept_timeout"):
            low = getattr(self, f"min_{name}_sec")
            high = getattr(self, f"max_{name}_sec")
            offered = getattr(self, f"{name}_sec")
            if not low <= offered <= high:
                raise ValueError(f"need min_{name}_sec <= {name}_sec <= max_{name}_sec")
        if self.min_agreement_expiration_sec > self.max_agreement_expiration_sec:
            raise ValueError("min_agreement_expiration_sec is above max_agreement_expiration_sec")
        for runtime in self.runtimes:
            self.pricing.setdefault(runtime, Pricing())
        return self

    @property
    def database_path(self) -> Path:
        return self.data_dir / "provider.db"

    @property
    def keystore_path(self) -> Path:
        return self.data_dir / "identity" / "keystore.json"

    @property
    def presets_path(self) -> Path:
        return self.data_dir / "presets.json"
