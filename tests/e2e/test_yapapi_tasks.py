"""Ten tasks of a plain yapapi script over two real providers, files moving both ways through gftp
and the relay; every agreement ends with an accepted invoice, paid on chain and settled."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from blueprints.localnet import invoices, local_network, run_script, wait_settled
from payments.devchain import ChainInfo
from tests.e2e.conftest import assert_paid_on_chain

TASKS = Path(__file__).resolve().parents[2] / "blueprints" / "scripts" / "tasks.py"


@pytest.mark.timeout(240)
async def test_ten_tasks_over_two_providers(tmp_path: Path, busybox: object, chain: ChainInfo) -> None:
    image, digest = busybox.archive, busybox.sha3_224  # type: ignore[attr-defined]
    out = tmp_path / "out"
    async with local_network(tmp_path, image, providers=2, chain=chain) as net:
        code, text = await run_script(
            net,
            TASKS,
            "--image-hash",
            digest,
            "--image-url",
            net.image_url,
            "--out",
            str(out),
            "--seconds",
            "1",
        )
        assert code == 0, text + net.logs()
        assert "ERROR" not in text, text
        done = re.findall(r"^done (\d+) (provider-\d)$", text, re.MULTILINE)
        assert sorted(int(n) for n, _ in done) == list(range(10)), text
        assert {p for _, p in done} == {"provider-1", "provider-2"}, "both providers must have worked"
        for n in range(10):
            first, second = (out / f"out-{n}.txt").read_text().splitlines()
            assert json.loads(first) == {"task": n, "square": n * n}
            assert second == "GOLEM NETWORK"
        received = await invoices(net)
        assert len(received) == 2, received  # one agreement per provider
        assert all(i["status"] in ("ACCEPTED", "SETTLED") for i in received), received
        assert_paid_on_chain(net, await wait_settled(net, providers=2))
