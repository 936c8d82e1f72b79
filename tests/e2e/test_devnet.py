"""``golem devnet up|status|down`` as a user runs them: the whole network comes up on loopback, a
plain yapapi script runs on it (its image pushed to the market node's registry) and is paid on the
local chain, a second ``up`` changes nothing, and ``down`` leaves no process, container or port."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import docker
import pytest

from blueprints import devnet_runner
from blueprints.devnet_runner import Devnet

GOLEM = [sys.executable, "-c", "from market.cli import main; main()"]
HELLO = Path(__file__).resolve().parents[2] / "blueprints" / "scripts" / "hello.py"
FREE_PORTS = ["--market-port", "0", "--requestor-port", "0", "--chain-port", "0"]


def golem(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*GOLEM, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or dict(os.environ),
        check=False,
    )


def sourced(env_file: Path) -> dict[str, str]:
    """The environment after ``source <env_file>`` (lines of ``export K=V``)."""
    out = subprocess.run(
        ["bash", "-c", f"source {env_file} && env -0"], capture_output=True, check=True, env=dict(os.environ)
    ).stdout
    return dict(item.split("=", 1) for item in out.decode().split("\0") if "=" in item)


@pytest.mark.timeout(300)
def test_devnet_up_run_down(tmp_path: Path, busybox: object) -> None:
    folder = tmp_path / "devnet"
    try:
        up = golem("devnet", "up", "--dir", str(folder), "--providers", "2", *FREE_PORTS)
        assert up.returncode == 0, up.stdout + up.stderr
        assert "the offers of 2 provider(s) are on the market" in up.stdout
        net = Devnet.load(folder)
        assert net is not None
        assert sorted(p.name for p in net.parts) == ["market", "provider-1", "provider-2", "requestor"]
        pids = {p.name: p.pid for p in net.parts}

        status = golem("devnet", "status", "--dir", str(folder), "--json")
        assert status.returncode == 0, status.stdout + status.stderr
        parts = {p["name"]: p for p in json.loads(status.stdout)["parts"]}
        assert set(parts) == {"chain", "market", "provider-1", "provider-2", "requestor"}
        assert all(p["running"] and p["answering"] for p in parts.values()), parts
        assert "2 offers" in parts["provider-1"]["detail"]  # vm and wasmtime

        again = golem("devnet", "up", "--dir", str(folder), "--providers", "2", *FREE_PORTS)
        assert again.returncode == 0, again.stdout + again.stderr
        reloaded = Devnet.load(folder)
        assert reloaded is not None and {p.name: p.pid for p in reloaded.parts} == pids

        # A user's run: push the image to the market node's registry, source the env file, run.
        image = busybox.archive  # type: ignore[attr-defined]
        market = net.part("market")
        assert market is not None
        pushed = golem("packages", "push", str(image), "--market", market.url, "--json")
        assert pushed.returncode == 0, pushed.stderr
        package = json.loads(pushed.stdout)
        env = sourced(folder / "env")
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
        run = subprocess.run(
            [sys.executable, str(HELLO), "--image-hash", package["hash"], "--image-url", package["url"]],
            capture_output=True, text=True, timeout=120, env=env, check=False,
        )  # fmt: skip
        assert run.returncode == 0, run.stdout + run.stderr
        assert " UTC " in run.stdout, run.stdout
        listing = golem("payments", "list", "--data-dir", str(folder / "requestor"), "--json", env=env)
        assert listing.returncode == 0, listing.stderr
        assert json.loads(listing.stdout)["documents"], listing.stdout
    finally:
        down = golem("devnet", "down", "--dir", str(folder))
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
    status = golem("devnet", "status", "--dir", str(folder))
    assert status.returncode == 0 and "no devnet" in status.stdout, status.stdout
