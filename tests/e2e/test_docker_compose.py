"""The network of ``docker/compose.yaml`` in containers: a chain, a market node, two providers and a
requestor daemon. The unchanged yapapi hello-world runs from the host against the requestor
container's published port; the payload goes up to the market container's registry with
``golem packages push``; the provider's invoice is accepted, paid on the chain container's anvil and
settled in the provider's books.

Opt-in (``GOLEM_DOCKER_E2E=1``): it builds the images (debootstrap on the first run) and takes
minutes. Needs root (debootstrap), a Docker engine, ``docker compose`` or ``docker-compose``,
busybox-static on the host and network access to a Debian mirror and PyPI for the first build.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import pytest

from payments import devchain
from payments.devchain import ChainInfo

ROOT = Path(__file__).resolve().parents[2]
HELLO = ROOT / "blueprints" / "scripts" / "hello.py"
COMPOSE_FILE = ROOT / "docker" / "compose.yaml"
GOLEM = [sys.executable, "-c", "from market.cli import main; main()"]
DATE_LINE = re.compile(r"^\w{3} \w{3} +\d+ \d\d:\d\d:\d\d UTC \d{4}$", re.MULTILINE)

pytestmark = [
    pytest.mark.skipif(
        os.environ.get("GOLEM_DOCKER_E2E") != "1",
        reason="opt-in: set GOLEM_DOCKER_E2E=1 (builds the images and runs five containers; minutes)",
    ),
    pytest.mark.timeout(1500),
]

T = TypeVar("T")


def compose_command() -> list[str]:
    for candidate in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(candidate[0]) is None:
            continue
        probe = subprocess.run([*candidate, "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return candidate
    pytest.skip("neither `docker compose` nor `docker-compose` is installed")


def run(command: list[str], *, timeout: float = 120, env: dict[str, str] | None = None) -> str:
    """Run ``command``; its stdout. Fails the test with the command's output if it fails."""
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    assert done.returncode == 0, (
        f"{' '.join(command)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    )
    return done.stdout


def poll(what: str, probe: Callable[[], T | None], timeout: float, interval: float = 1.0) -> T:
    """Call ``probe`` until it returns something other than None; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found is not None:
            return found
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f} s"
        time.sleep(interval)


def get_json(url: str, headers: dict[str, str] | None = None) -> Any:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@dataclass
class ComposeNetwork:
    compose: list[str]
    env: dict[str, str]
    provider_root: Path

    def __call__(self, *args: str, timeout: float = 120) -> str:
        return run([*self.compose, *args], timeout=timeout, env=self.env)

    def published(self, service: str, port: int) -> str:
        """``HOST:PORT`` where ``service``'s ``port`` is published on this host."""
        return self("port", service, str(port)).strip()

    def exec_json(self, service: str, *command: str) -> Any:
        return json.loads(self("exec", "-T", service, *command))

    def logs(self) -> str:
        done = subprocess.run(
            [*self.compose, "logs", "--no-color", "--tail", "60"],
            capture_output=True, text=True, env=self.env, check=False,
        )  # fmt: skip
        return done.stdout + done.stderr


@pytest.fixture
def network(tmp_path: Path) -> Iterator[ComposeNetwork]:
    """Build the images, start the compose network under a unique project name; tear it all down."""
    compose = compose_command()
    build = subprocess.run(
        [str(ROOT / "docker" / "build.sh")], capture_output=True, text=True, timeout=1200, check=False
    )
    assert build.returncode == 0, f"docker/build.sh failed:\n{build.stdout[-3000:]}\n{build.stderr[-3000:]}"
    project = f"golem-e2e-{secrets.token_hex(3)}"
    provider_root = tmp_path / "providers"
    env = dict(
        os.environ,
        GOLEM_PROVIDER_ROOT=str(provider_root),
        # Free host ports: a devnet on this machine may hold the defaults.
        GOLEM_MARKET_PUBLISH="127.0.0.1:",
        GOLEM_REQUESTOR_PUBLISH="127.0.0.1:",
        GOLEM_CHAIN_PUBLISH="127.0.0.1:",
        GOLEM_PROVIDER1_STATUS="127.0.0.1:",
        GOLEM_PROVIDER2_STATUS="127.0.0.1:",
        GOLEM_MARKET_UPLOAD_TOKEN=secrets.token_urlsafe(16),
        GOLEM_PAYMENT_CYCLE_SECS="5",
    )
    net = ComposeNetwork([*compose, "-f", str(COMPOSE_FILE), "-p", project], env, provider_root)
    try:
        net("up", "-d", timeout=300)
        yield net
    finally:
        subprocess.run(
            [*net.compose, "down", "-v", "--timeout", "20"], env=env, capture_output=True, check=False
        )
        # Exe units are containers of the host engine, not of the project: remove any a provider
        # left behind (they carry their volumes' host path, which is under our folder).
        leftovers = subprocess.run(
            ["docker", "ps", "-aq", "--filter", "label=golem.volumes-root"],
            capture_output=True, text=True, check=False,
        ).stdout.split()  # fmt: skip
        for container in leftovers:
            labels = subprocess.run(
                ["docker", "inspect", "-f", '{{index .Config.Labels "golem.volumes-root"}}', container],
                capture_output=True, text=True, check=False,
            ).stdout  # fmt: skip
            if labels.startswith(str(provider_root)):
                subprocess.run(["docker", "rm", "-f", container], capture_output=True, check=False)


def _ready_market(market: str) -> int | None:
    try:
        offers = get_json(f"http://{market}/market/v1/offers?limit=100")
    except (urllib.error.URLError, OSError, ValueError):
        return None
    # Two providers, each offering vm and wasmtime.
    return offers["total"] if offers["total"] >= 4 else None


def _requestor_answers(requestor: str) -> bool | None:
    try:
        urllib.request.urlopen(f"http://{requestor}/me", timeout=5)
    except urllib.error.HTTPError as exc:
        return True if exc.code == 401 else None  # up, and refusing us without an app key
    except (urllib.error.URLError, OSError):
        return None
    return True


def test_hello_world_across_containers(network: ComposeNetwork, busybox: object, tmp_path: Path) -> None:
    started = time.monotonic()
    market = network.published("market", 7470)
    requestor = network.published("requestor", 7465)
    poll("both providers' offers on the market", lambda: _ready_market(market), timeout=180)
    poll("the requestor daemon", lambda: _requestor_answers(requestor), timeout=180)

    # The payload goes into the market container's registry from the host (hence the token).
    archive: Path = busybox.archive  # type: ignore[attr-defined]
    digest: str = busybox.sha3_224  # type: ignore[attr-defined]
    pushed = json.loads(
        run([*GOLEM, "packages", "push", str(archive), "--market", f"http://{market}", "--json"],
            env=dict(os.environ, GOLEM_MARKET_UPLOAD_TOKEN=network.env["GOLEM_MARKET_UPLOAD_TOKEN"]))
    )  # fmt: skip
    assert pushed["hash"] == digest and pushed["url"] == f"http://market:7470/packages/{digest}", pushed
    # yapapi checks the URL from this host and the providers download it from theirs: the market
    # container's address on the compose network is reachable from both (a Linux host routes to it).
    market_id = network("ps", "-q", "market").strip()
    market_ip = run(
        ["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", market_id]
    ).strip()
    image_url = f"http://{market_ip}:7470/packages/{digest}"

    app_key = network.exec_json("requestor", "golem", "requestor", "app-key", "create", "e2e", "--json")[
        "key"
    ]
    env = dict(
        os.environ,
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",  # our gftp
        YAGNA_APPKEY=app_key,
        YAGNA_API_URL=f"http://{requestor}",
        YAGNA_PAYMENT_DRIVER="erc20",
        YAGNA_PAYMENT_NETWORK="holesky",
        YAGNA_SUBNET="public",
        PYTHONUNBUFFERED="1",
    )
    hello = subprocess.run(
        [sys.executable, str(HELLO), "--image-hash", digest, "--image-url", image_url],
        capture_output=True, text=True, timeout=300, env=env, check=False,
    )  # fmt: skip
    text = hello.stdout + hello.stderr
    assert hello.returncode == 0, text + network.logs()
    # `date` ran in an exe unit the provider container created on the host engine.
    assert DATE_LINE.search(hello.stdout), text
    assert "ERROR" not in text and "Unpaid agreements" not in text, text

    # The requestor accepted the invoice (its Payment API, as yapapi sees it) ...
    invoices = get_json(
        f"http://{requestor}/payment-api/v1/invoices", headers={"Authorization": f"Bearer {app_key}"}
    )
    assert len(invoices) == 1, invoices
    invoice = invoices[0]
    assert invoice["status"] in ("ACCEPTED", "SETTLED") and invoice["paymentPlatform"] == "erc20-holesky-tglm"
    amount = Decimal(str(invoice["amount"]))
    assert amount > 0

    # ... paid it in a payment cycle (its books: a confirmed transfer with a transaction hash) ...
    def paid() -> dict[str, Any] | None:
        books = network.exec_json("requestor", "golem", "payments", "list", "--json")
        done = [p for p in books["payments"] if p["state"] == "Confirmed" and p["txHash"]]
        return done[0] if done else None

    payment = poll("the requestor's payment", paid, timeout=120, interval=2)
    assert Decimal(payment["amount"]) == amount and invoice["invoiceId"] in payment["documentIds"], payment
    payee = payment["payeeAddr"]
    assert payee == invoice["issuerId"], (payment, invoice)

    # ... the transfer is on the chain container's anvil (reached through its published port) ...
    chain = network.exec_json("chain", "cat", "/var/lib/golem/chain/chain.json")
    info = ChainInfo(**{**chain, "rpc_url": f"http://{network.published('chain', 8545)}"})
    moved = devchain.token_transfers(info, sender=payment["payerAddr"], receiver=payee)
    assert [(t.tx_hash, t.amount) for t in moved] == [(payment["txHash"], amount)], moved

    # ... and the provider that did the work checked it and marked its invoice settled.
    status_of = {
        name: f"http://{network.published(name, 7466)}/provider/v1" for name in ("provider-1", "provider-2")
    }
    worker = next(name for name, url in status_of.items() if get_json(f"{url}/health")["nodeId"] == payee)

    def settled() -> list[dict[str, Any]] | None:
        docs: list[dict[str, Any]] = get_json(f"{status_of[worker]}/documents?kind=Invoice")
        return docs if docs and all(d["status"] == "SETTLED" for d in docs) else None

    docs = poll("the provider's invoice SETTLED", settled, timeout=120, interval=2)
    assert [d["documentId"] for d in docs] == [invoice["invoiceId"]], docs
    status = json.loads(run([*GOLEM, "provider", "status", "--url", status_of[worker], "--json"]))
    assert [a["state"] for a in status["agreements"]] == ["Terminated"], status
    print(f"docker compose hello-world: {time.monotonic() - started:.0f} s after the network was up")
