"""The devnet and every blueprint with one command, as a user runs them: ``golem devnet up`` (and a
second ``up`` that changes nothing), ``golem devnet status``, then ``python -m blueprints.run
scan|fractal|wasm|service``, each building its payload from the repo and pushing it to the devnet's
market registry first; then ``golem devnet down``, which must leave no process, container or port."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import docker
import pytest

from blueprints import devnet_runner
from blueprints.devnet_runner import Devnet
from blueprints.fractal import render_png
from tests.integration.chromium import chromium, find_chromium

GOLEM = [sys.executable, "-c", "from market.cli import main; main()"]
FREE_PORTS = ["--market-port", "0", "--requestor-port", "0", "--chain-port", "0"]


def run(args: list[str], cwd: Path, timeout: float = 180) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.perf_counter()
    done = subprocess.run(
        args, capture_output=True, text=True, timeout=timeout, cwd=cwd, env=dict(os.environ), check=False
    )
    return done, time.perf_counter() - started


async def console_offers(market_url: str, screenshot: Path) -> list[tuple[str, str]]:
    """Open the market node's console in headless Chromium, wait for 4 offers, save a screenshot;
    the (name, runtime) of each offer row shown."""
    rows = "[...document.querySelectorAll('#offers tbody tr')].filter(tr => tr.cells.length > 1)"
    async with chromium(screenshot.parent / "chromium-profile") as page:
        await page.navigate(f"{market_url}/")
        await page.wait_for(f"{rows}.length === 4", timeout=20)
        shown = await page.evaluate(
            f"JSON.stringify({rows}.map(tr => [tr.cells[0].textContent, tr.cells[2].textContent]))"
        )
        path = await page.screenshot(screenshot)
        print(f"console screenshot: {path}")
    return [(name, runtime) for name, runtime in json.loads(str(shown))]


@pytest.mark.timeout(420)
def test_every_blueprint_runs_with_one_command(tmp_path: Path, busybox: object) -> None:
    folder = tmp_path / "devnet"
    blueprint = [sys.executable, "-m", "blueprints.run"]
    try:
        up_command = [*GOLEM, "devnet", "up", "--dir", str(folder), "--providers", "2", *FREE_PORTS]
        up, _ = run(up_command, tmp_path)
        assert up.returncode == 0, up.stdout + up.stderr
        assert "the offers of 2 provider(s) are on the market" in up.stdout
        net = Devnet.load(folder)
        assert net is not None
        assert sorted(p.name for p in net.parts) == ["market", "provider-1", "provider-2", "requestor"]
        pids = {p.name: p.pid for p in net.parts}

        status, _ = run([*GOLEM, "devnet", "status", "--dir", str(folder), "--json"], tmp_path)
        assert status.returncode == 0, status.stdout + status.stderr
        parts = {p["name"]: p for p in json.loads(status.stdout)["parts"]}
        assert set(parts) == {"chain", "market", "provider-1", "provider-2", "requestor"}
        assert all(p["running"] and p["answering"] for p in parts.values()), parts
        market = net.part("market")
        assert market is not None
        if find_chromium() is not None:  # CI installs it; a laptop without it skips this part
            shown = asyncio.run(console_offers(market.url, tmp_path / "console.png"))
            # Both providers' vm and wasmtime offers, live on the market node's console.
            assert sorted((name, runtime.split()[0]) for name, runtime in shown) == [
                ("provider-1", "vm"),
                ("provider-1", "wasmtime"),
                ("provider-2", "vm"),
                ("provider-2", "wasmtime"),
            ], shown
        again, _ = run(up_command, tmp_path)
        assert again.returncode == 0, again.stdout + again.stderr
        reloaded = Devnet.load(folder)
        assert reloaded is not None and {p.name: p.pid for p in reloaded.parts} == pids

        scan, seconds = run([*blueprint, "scan", "--dir", str(folder), "--seconds", "2"], tmp_path)
        assert scan.returncode == 0, scan.stdout + scan.stderr
        assert "4 offer(s) from 2 provider(s) in subnet public:" in scan.stdout, scan.stdout
        print(f"scan: {seconds:.1f} s")

        fractal, seconds = run(
            [
                *blueprint,
                "fractal",
                "--dir",
                str(folder),
                "--size",
                "120x80",
                "--max-iter",
                "128",
                "--tiles",
                "4",
            ],
            tmp_path,
        )
        assert fractal.returncode == 0, fractal.stdout + fractal.stderr
        assert "pushed golem-blueprints-latest.tar to http://127.0.0.1:" in fractal.stdout, fractal.stdout
        assert (tmp_path / "mandelbrot.png").read_bytes() == render_png(120, 80, 4, 128)
        assert "invoice(s) accepted" in fractal.stdout, fractal.stdout
        print(f"fractal: {seconds:.1f} s")

        wasm, seconds = run(
            [*blueprint, "wasm", "--dir", str(folder), "--stop", "2000000", "--tasks", "4"], tmp_path
        )
        assert wasm.returncode == 0, wasm.stdout + wasm.stderr
        assert "pushed primes.wasm to http://127.0.0.1:" in wasm.stdout, wasm.stdout
        assert "primes in [0, 2000000): 148933, their sum 142913828922" in wasm.stdout, wasm.stdout
        assert "check: equal to a local sieve" in wasm.stdout, wasm.stdout
        print(f"wasm: {seconds:.1f} s")

        service, seconds = run(
            [*blueprint, "service", "--dir", str(folder), "--rounds", "3", "--interval", "0.5"], tmp_path
        )
        assert service.returncode == 0, service.stdout + service.stderr
        assert "completed 3 rounds with 2 instances" in service.stdout, service.stdout
        assert "(2 invoice(s) accepted)" in service.stdout, service.stdout
        print(f"service: {seconds:.1f} s")
    finally:
        down, _ = run([*GOLEM, "devnet", "down", "--dir", str(folder)], tmp_path)
    assert down.returncode == 0, down.stdout + down.stderr
    assert "is down" in down.stdout

    # Nothing is left: processes, containers, ports.
    assert devnet_runner.wait_gone(list(pids.values()))
    chain = json.loads((folder / "chain" / "chain.json").read_text())
    assert devnet_runner.wait_gone([chain["pid"]])
    client = docker.from_env()
    try:
        for provider_id in net.provider_ids:
            label = f"golem.exeunit-owner=provider-{provider_id}"
            assert client.containers.list(all=True, filters={"label": label}) == []
    finally:
        client.close()
    for port in [*devnet_runner.ports(net), int(chain["rpc_url"].rsplit(":", 1)[1])]:
        assert not devnet_runner.port_open(port), port
    after, _ = run([*GOLEM, "devnet", "status", "--dir", str(folder)], tmp_path)
    assert after.returncode == 0 and "no devnet" in after.stdout, after.stdout


def test_without_a_devnet_the_runner_says_what_to_do(tmp_path: Path) -> None:
    done, _ = run(
        [sys.executable, "-m", "blueprints.run", "fractal", "--dir", str(tmp_path / "none")], tmp_path
    )
    assert done.returncode == 1
    assert f"no devnet in {tmp_path / 'none'}; start one with `golem devnet up`" in done.stderr
    assert not (tmp_path / "none").exists()  # nothing was built or created
