"""The provider operator's commands: presets priced in human units, ``run --preset``, and
``golem provider status`` in one shot and with ``--watch`` (against a real daemon's status API)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from market.cli import _load_commands, golem
from market.core.identity import PASSWORD_ENV
from provider.cli import STATUS_PARTS
from provider.config import Pricing
from provider.presets import describe_pricing, format_glm
from tests.provider.conftest import DaemonFactory

_load_commands()
GOLEM = [sys.executable, "-c", "from market.cli import main; main()"]


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("GOLEM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    return CliRunner()


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        ("0.1", "0.1"),
        ("0.100", "0.1"),
        ("0", "0"),
        ("0E-18", "0"),
        ("12", "12"),
        ("1E+1", "10"),
        ("0.000010649402105557", "0.000010649402105557"),
    ],
)
def test_amounts_read_as_plain_decimals(amount: str, text: str) -> None:
    assert format_glm(Decimal(amount)) == text


def test_pricing_in_the_units_it_is_set_in() -> None:
    assert describe_pricing(Pricing()) == "0.1 GLM/CPU-hour, 0.02 GLM/hour, start 0 GLM"
    custom = Pricing(cpu_per_hour=Decimal("1.50"), duration_per_hour=Decimal(0), start_price=Decimal("0.001"))
    assert describe_pricing(custom) == "1.5 GLM/CPU-hour, 0 GLM/hour, start 0.001 GLM"


def test_preset_list_shows_prices_and_what_is_offered(runner: CliRunner, tmp_path: Path) -> None:
    for args in (
        ["cheap", "--runtime", "wasmtime", "--cpu-per-hour", "0.05", "--duration-per-hour", "0.010"],
        ["fast", "--runtime", "vm", "--cpu-per-hour", "0.5", "--start-price", "0.001"],
    ):
        created = runner.invoke(golem, ["provider", "preset", "create", *args])
        assert created.exit_code == 0, created.output
    assert (
        "created fast             vm        0.5 GLM/CPU-hour, 0.02 GLM/hour, start 0.001 GLM"
        in created.output
    )

    listed = runner.invoke(golem, ["provider", "preset", "list"])
    assert listed.exit_code == 0, listed.output
    assert listed.output.splitlines() == [
        "cheap            wasmtime  0.05 GLM/CPU-hour, 0.01 GLM/hour, start 0 GLM",
        "fast             vm        0.5 GLM/CPU-hour, 0.02 GLM/hour, start 0.001 GLM",
        "none is offered: name them in active_presets of provider.toml, or run "
        "`golem provider run --preset NAME`",
    ]
    config = tmp_path / "data" / "provider" / "provider.toml"
    config.write_text('[provider]\nactive_presets = ["fast"]\n')
    listed = runner.invoke(golem, ["provider", "preset", "list"])
    assert listed.output.splitlines() == [
        "cheap            wasmtime  0.05 GLM/CPU-hour, 0.01 GLM/hour, start 0 GLM",
        "fast             vm        0.5 GLM/CPU-hour, 0.02 GLM/hour, start 0.001 GLM  (offered)",
    ]


def test_bad_presets_are_refused_and_nothing_changes(runner: CliRunner, tmp_path: Path) -> None:
    presets = tmp_path / "data" / "provider" / "presets.json"
    for args, message in (
        (["bad name", "--runtime", "vm"], "should match pattern"),
        (["neg", "--runtime", "vm", "--cpu-per-hour", "-1"], "greater than or equal to 0"),
        (["x", "--runtime", "docker"], "'docker' is not one of"),
        (["x", "--runtime", "vm", "--start-price", "lots"], "'lots' is not a valid decimal amount of GLM"),
        (["x", "--runtime", "vm", "--cpu-per-hour", "NaN"], "'NaN' is not a finite amount of GLM"),
    ):
        result = runner.invoke(golem, ["provider", "preset", "create", *args])
        assert result.exit_code != 0 and message in result.output, (args, result.output)
    assert not presets.exists()
    runner.invoke(golem, ["provider", "preset", "create", "ok", "--runtime", "vm"])
    before = presets.read_bytes()
    result = runner.invoke(golem, ["provider", "preset", "update", "ok", "--duration-per-hour", "-0.1"])
    assert result.exit_code == 1 and "greater than or equal to 0" in result.output
    assert presets.read_bytes() == before


def test_run_offers_the_presets_named_on_the_command_line(runner: CliRunner, tmp_path: Path) -> None:
    runner.invoke(golem, ["provider", "preset", "create", "fast", "--runtime", "vm"])
    shown = runner.invoke(golem, ["provider", "run", "--preset", "fast", "--show-config"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["active_presets"] == ["fast"]
    # A preset that does not exist stops the start before anything is created.
    missing = runner.invoke(golem, ["provider", "run", "--preset", "ghost", "--status-port", "0"])
    assert missing.exit_code == 1 and "active preset 'ghost' does not exist" in missing.output


async def test_status_reads_every_part_of_a_running_provider(
    runner: CliRunner, start_provider: DaemonFactory
) -> None:
    provider = await start_provider()
    url = provider.status_url
    assert url is not None
    result = await asyncio.to_thread(runner.invoke, golem, ["provider", "status", "--url", url, "--json"])
    assert result.exit_code == 0, result.output
    snapshot = json.loads(result.output)
    assert tuple(snapshot) == STATUS_PARTS
    assert snapshot["health"]["nodeId"] == provider.node_id and snapshot["activities"] == []
    text = await asyncio.to_thread(runner.invoke, golem, ["provider", "status", "--url", url])
    assert text.exit_code == 0, text.output
    for heading in ("offers (2)", "agreements (0)", "activities (0)", "documents (0)", "earnings"):
        assert heading in text.output.splitlines(), heading
    offers = [line for line in text.output.splitlines() if line.startswith("  offer ")]
    assert len(offers) == 2
    assert all("0.1 GLM/CPU-hour, 0.02 GLM/hour, start 0 GLM; 4 threads, 8.0 GiB memory" in o for o in offers)


async def _watch(url: str, frames: int) -> tuple[list[str], int]:
    """Run ``status --watch 0.2`` until it printed ``frames`` frames, then Ctrl-C it."""
    proc = await asyncio.create_subprocess_exec(
        *GOLEM, "provider", "status", "--url", url, "--watch", "0.2",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=dict(os.environ),
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(20):
            while sum("(Ctrl-C to stop)" in line for line in lines) < frames:
                line = (await proc.stdout.readline()).decode()
                assert line, "status --watch ended by itself: " + (await proc.stderr.read()).decode()
                lines.append(line)
    finally:
        proc.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(proc.wait(), 10)
    assert b"Traceback" not in await proc.stderr.read()
    return lines, code


async def test_watch_refreshes_until_ctrl_c(start_provider: DaemonFactory) -> None:
    provider = await start_provider()
    assert provider.status_url is not None
    lines, code = await _watch(provider.status_url, frames=3)
    assert code == 0
    assert sum(line.startswith("provider-1 (") for line in lines) >= 2  # each frame renders it all


async def test_watch_keeps_trying_a_provider_that_is_down() -> None:
    lines, code = await _watch("http://127.0.0.1:9/provider/v1", frames=2)
    assert code == 0
    assert all("cannot read http://127.0.0.1:9/provider/v1/health" in line for line in lines if line.strip())
