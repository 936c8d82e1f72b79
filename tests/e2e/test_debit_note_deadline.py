"""A real yapapi requestor that never accepts debit notes: the provider process breaks the agreement
with ``DebitNotesDeadline`` once the negotiated accept timeout passes, and stops the work.

The script is plain yapapi 0.13.1 with a strategy whose ``debit_note_accepted_amount`` is zero (yapapi
then ignores every debit note, as it does for notes it cannot accept). Its task sleeps far longer than
the deadline, so only the provider can end it.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from blueprints.localnet import Network, local_network
from blueprints.localnet import requestor_api as api

SCRIPT = """
import asyncio, sys
from datetime import timedelta
from decimal import Decimal

from yapapi import Golem, Task
from yapapi.payload import vm
from yapapi.strategy import LeastExpensiveLinearPayuMS


class NeverAcceptsDebitNotes(LeastExpensiveLinearPayuMS):
    async def debit_note_accepted_amount(self, debit_note):
        return Decimal(0)


async def worker(context, tasks):
    async for task in tasks:
        script = context.new_script(timeout=timedelta(minutes=5))
        script.run("/bin/sh", "-c", "sleep 300")
        yield script
        task.accept_result()


async def main(image_hash, image_url):
    package = await vm.repo(image_hash=image_hash, image_url=image_url)
    async with Golem(budget=1.0, subnet_tag="public", strategy=NeverAcceptsDebitNotes()) as golem:
        async for _ in golem.execute_tasks(worker, [Task(None)], package, timeout=timedelta(minutes=10)):
            print("finished")


asyncio.run(main(sys.argv[1], sys.argv[2]))
"""

# Debit notes every second; 30 s to accept each (yapapi never negotiates less).
PROVIDER_ENV = {
    "GOLEM_PROVIDER_DEBIT_NOTE_INTERVAL_SEC": "1",
    "GOLEM_PROVIDER_MIN_DEBIT_NOTE_INTERVAL_SEC": "1",
    "GOLEM_PROVIDER_DEBIT_NOTE_ACCEPT_TIMEOUT_SEC": "30",
    "GOLEM_PROVIDER_MIN_DEBIT_NOTE_ACCEPT_TIMEOUT_SEC": "30",
}


async def broken_agreement(net: Network) -> tuple[str, dict[str, Any]] | None:
    for entry in await api(net, "/market-api/v1/agreements"):
        agreement = await api(net, f"/market-api/v1/agreements/{entry['id']}")
        if agreement["state"] == "Terminated":
            reason = await api(net, f"/market-api/v1/agreements/{entry['id']}/terminate/reason")
            return entry["id"], reason
    return None


@pytest.mark.timeout(300)
async def test_yapapi_that_never_accepts_debit_notes_loses_the_agreement(
    tmp_path: Path, busybox: object
) -> None:
    image, digest = busybox.archive, busybox.sha3_224  # type: ignore[attr-defined]
    script = tmp_path / "never_accepts.py"
    script.write_text(SCRIPT)
    async with local_network(tmp_path, image, provider_env=PROVIDER_ENV) as net:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(script),
            digest,
            net.image_url,
            env=net.env(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            found = None
            async with asyncio.timeout(150):
                while found is None:
                    assert proc.returncode is None, "the script ended before the provider acted"
                    await asyncio.sleep(1)
                    found = await broken_agreement(net)
            agreement_id, reason = found
            assert reason["golem.provider.code"] == "DebitNotesDeadline", reason
            assert "not accepted" in reason["message"], reason
            # Notes did arrive, and none was accepted.
            notes = [
                n for n in await api(net, "/payment-api/v1/debitNotes") if n["agreementId"] == agreement_id
            ]
            assert notes and all(n["status"] == "RECEIVED" for n in notes), notes
            # The provider destroyed the activity: its container is gone, the requestor sees Terminated.
            (activity_id,) = await api(net, f"/activity-api/v1/activity?agreementId={agreement_id}")
            state = await api(net, f"/activity-api/v1/activity/{activity_id}/state")
            assert state["state"][0] == "Terminated", state

            # ... and still billed what was used.
            async def invoice() -> list[Any]:
                return [
                    i for i in await api(net, "/payment-api/v1/invoices") if i["agreementId"] == agreement_id
                ]

            async with asyncio.timeout(30):
                while not await invoice():
                    await asyncio.sleep(0.5)
            (sent,) = await invoice()
            assert sent["activityIds"] == [activity_id] and float(sent["amount"]) > 0
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGINT)
                try:
                    await asyncio.wait_for(proc.wait(), 20)
                except TimeoutError:
                    proc.kill()
            with contextlib.suppress(Exception):
                output = (await proc.stdout.read()).decode() if proc.stdout else ""
                print(output[-3000:])
