"""yapapi's service model on two real providers: two instances run a background process, report
their state repeatedly, and stop cleanly; both agreements end with an accepted invoice. Debit notes
come every second and each accepted one is paid on the local chain while the service runs
(mid-agreement payments), before the final invoice."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import pytest

from blueprints.localnet import (
    debit_notes,
    invoices,
    local_network,
    provider_documents,
    provider_payments,
    run_script,
    wait_settled,
)
from payments.devchain import ChainInfo
from tests.e2e.conftest import assert_paid_on_chain


def _at(value: object) -> datetime:
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


SERVICE = Path(__file__).resolve().parents[2] / "blueprints" / "scripts" / "service.py"


@pytest.mark.timeout(240)
async def test_two_service_instances(tmp_path: Path, busybox: object, chain: ChainInfo) -> None:
    image, digest = busybox.archive, busybox.sha3_224  # type: ignore[attr-defined]
    # Debit notes every second (instead of 120 s) so this short run sees several and accepts them.
    fast_billing = {
        "GOLEM_PROVIDER_DEBIT_NOTE_INTERVAL_SEC": "1",
        "GOLEM_PROVIDER_MIN_DEBIT_NOTE_INTERVAL_SEC": "1",
    }
    async with local_network(tmp_path, image, providers=2, provider_env=fast_billing, chain=chain) as net:
        code, text = await run_script(
            net, SERVICE, "--image-hash", digest, "--image-url", net.image_url, "--rounds", "6"
        )
        assert code == 0, text + net.logs()
        assert "ERROR" not in text and "Traceback" not in text, text
        assert "2 instances running" in text and "all instances stopped" in text, text
        reports = re.findall(r"^instance (provider-\d) round (\d): count (\d+)$", text, re.MULTILINE)
        for provider in ("provider-1", "provider-2"):
            counts = [int(c) for p, _, c in reports if p == provider]
            assert len(counts) == 6, text
            # The counter started by one command kept running between the later ones.
            assert counts[0] > 0 and counts == sorted(counts) and counts[-1] > counts[0], counts
        received = await invoices(net)
        assert len(received) == 2 and all(i["status"] in ("ACCEPTED", "SETTLED") for i in received), received
        notes = await debit_notes(net)
        assert len(notes) >= 2, notes  # at least one per running activity
        assert all(n["status"] in ("ACCEPTED", "SETTLED") for n in notes), [n["status"] for n in notes]
        assert all(float(str(n["totalAmountDue"])) > 0 for n in notes), notes
        settled = await wait_settled(net, providers=2)
        assert_paid_on_chain(net, settled)
        for n in (1, 2):
            # Paid while the service ran: confirmations for its activity's debit notes, timed before
            # the invoice was issued, and every note the provider issued ends settled.
            [invoice] = provider_documents(net, n)
            early = [
                p
                for p in provider_payments(net, n)
                if p["activityPayments"] and _at(p["timestamp"]) < _at(invoice["timestamp"])
            ]
            assert early, (provider_payments(net, n), invoice)
            statuses = {d["status"] for d in provider_documents(net, n, "DebitNote")}
            assert statuses == {"SETTLED"}, statuses
