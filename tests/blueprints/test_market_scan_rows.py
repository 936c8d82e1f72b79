"""How the market scan blueprint reads an offer's properties into a row, and how it prints rows."""

from __future__ import annotations

from typing import Any

from blueprints.scripts.market_scan import describe, table

OFFER: dict[str, Any] = {
    "golem.node.id.name": "provider-7",
    "golem.runtime.name": "vm",
    "golem.inf.cpu.threads": 4,
    "golem.inf.mem.gib": 7.5,
    "golem.inf.storage.gib": 40,
    "golem.com.usage.vector": ["golem.usage.duration_sec", "golem.usage.cpu_sec"],
    "golem.com.pricing.model.linear.coeffs": [2.7777777777777776e-06, 2.777777777777778e-05, 0.25],
    "golem.com.payment.platform.erc20-holesky-tglm.address": "0xabc",
}


def test_prices_in_human_units_follow_the_usage_vector() -> None:
    row = describe("0x1234567890abcdef", OFFER)
    assert (row.name, row.runtime, row.threads, row.memory_gib, row.storage_gib) == (
        "provider-7", "vm", 4, 7.5, 40.0,
    )  # fmt: skip
    # The vector's order decides which coefficient is which; the last one is the start price.
    assert (row.per_cpu_hour, row.per_hour, row.start) == ("0.1", "0.01", "0.25")
    assert (row.token, row.platforms) == ("tGLM", ["erc20-holesky-tglm"])


def test_an_offer_without_pricing_shows_gaps() -> None:
    row = describe("0x1", {"golem.runtime.name": "wasmtime", "golem.inf.cpu.threads": "many"})
    assert (row.name, row.runtime, row.threads) == ("?", "wasmtime", None)
    assert (row.per_cpu_hour, row.per_hour, row.start, row.token) == (None, None, None, "?")
    printed = table([row])
    assert printed.splitlines()[1].split() == ["?", "0x1", "wasmtime", "-", "-", "-", "-", "-", "-"]


def test_mainnet_glm_and_mixed_platforms() -> None:
    mainnet = {**OFFER, "golem.com.payment.platform.erc20-mainnet-glm.address": "0xabc"}
    mainnet.pop("golem.com.payment.platform.erc20-holesky-tglm.address")
    assert describe("0x1", mainnet).token == "GLM"
    both = {**OFFER, "golem.com.payment.platform.erc20-mainnet-glm.address": "0xabc"}
    assert describe("0x1", both).token == "?"


def test_table_lines_up_columns() -> None:
    rows = [
        describe("0xaaaaaaaaaaaa", OFFER),
        describe("0xbbbbbbbbbbbb", {**OFFER, "golem.runtime.name": "wasmtime"}),
    ]
    lines = table(rows).splitlines()
    assert lines[0].split()[:3] == ["provider", "id", "runtime"]
    assert lines[1].index("0.1 tGLM") == lines[2].index("0.1 tGLM")
    assert "7.5 GiB" in lines[1] and "40 GiB" in lines[1]
