"""Shared builders for the provider tests: a yapapi-shaped requestor counter and a fixed machine."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from market.core.clock import to_millis
from market.core.identity import Identity
from market.demo import PLATFORM, demo_demand
from provider.hardware import Hardware

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
HARDWARE = Hardware(threads=4, cores=2, memory_gib=8.0, storage_gib=40.0, architecture="x86_64")
REQUESTOR = Identity.from_private_key("0x" + "11" * 32)


def requestor_counter(
    extra: Mapping[str, Any] | None = None,
    *,
    expires_in: timedelta = timedelta(minutes=15),
    now: datetime = NOW,
    platform: str | None = PLATFORM,
    requestor: Identity = REQUESTOR,
) -> tuple[dict[str, Any], str]:
    """The properties and constraints yapapi counters our offer with (spec §4.4)."""
    props, constraints = demo_demand(requestor, to_millis(now + expires_in))
    if platform is not None:
        props["golem.com.payment.chosen-platform"] = platform
    props.update(extra or {})
    return props, constraints
