"""yapapi's service model on two real providers: two instances run a background process, report
their state repeatedly, and stop cleanly; both agreements end with an accepted invoice."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.network import invoices, local_network, run_script

SERVICE = Path(__file__).resolve().parents[2] / "blueprints" / "scripts" / "service.py"


@pytest.mark.timeout(240)
async def test_two_service_instances(tmp_path: Path, busybox: object) -> None:
    image, digest = busybox.archive, busybox.sha3_224  # type: ignore[attr-defined]
    async with local_network(tmp_path, image, providers=2) as net:
        code, text = await run_script(net, SERVICE, "--image-hash", digest, "--image-url", net.image_url)
        assert code == 0, text + net.logs()
        assert "ERROR" not in text and "Traceback" not in text, text
        assert "2 instances running" in text and "all instances stopped" in text, text
        reports = re.findall(r"^instance (provider-\d) round (\d): count (\d+)$", text, re.MULTILINE)
        for provider in ("provider-1", "provider-2"):
            counts = [int(c) for p, _, c in reports if p == provider]
            assert len(counts) == 3, text
            # The counter started by one command kept running between the later ones.
            assert counts[0] > 0 and counts == sorted(counts) and counts[-1] > counts[0], counts
        received = await invoices(net)
        assert len(received) == 2 and all(i["status"] in ("ACCEPTED", "SETTLED") for i in received), received
