"""A failing command: yapapi reports it with the exit code, retries the task, and the retry succeeds
on a fresh agreement with the same provider (which re-offers itself when an agreement ends)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from blueprints.localnet import invoices, local_network, run_script
from payments.devchain import ChainInfo

RETRY = Path(__file__).resolve().parents[2] / "blueprints" / "scripts" / "retry.py"


@pytest.mark.timeout(240)
async def test_failed_command_is_reported_and_retried(
    tmp_path: Path, busybox: object, chain: ChainInfo
) -> None:
    image, digest = busybox.archive, busybox.sha3_224  # type: ignore[attr-defined]
    async with local_network(tmp_path, image, chain=chain) as net:
        code, text = await run_script(
            net, RETRY, "--image-hash", digest, "--image-url", net.image_url, timeout=120
        )
        assert code == 0, text + net.logs()
        failures = re.findall(r"^worker failed: .*command exited with code 3", text, re.MULTILINE)
        assert len(failures) == 2, text
        assert sorted(re.findall(r"^task (\d) ok after 2 attempts$", text, re.MULTILINE)) == ["0", "1"], text
        assert "ERROR" not in text, text
        received = await invoices(net)
        assert received and all(i["status"] in ("ACCEPTED", "SETTLED") for i in received), received
