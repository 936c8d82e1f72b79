"""A budget smaller than the job's cost is never exceeded, on a real chain with real yapapi.

The plain yapapi script asks for one long task (``sleep 300``) with ``Golem(budget=0.05)`` from a
provider charging 0.01 GLM a second, billing every second. yapapi accepts debit notes while the
allocation covers them; then our Payment API refuses the acceptance ("not enough funds"), the
provider, left without acceptances, breaks the agreement once the accept timeout passes and stops the
work, and the script, its task unfinished, gives up and ends instead of hanging. What was accepted
and what was paid on chain stay within the budget, and the provider still invoices what was used.
"""

from __future__ import annotations

import asyncio
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from blueprints.localnet import local_network
from blueprints.localnet import requestor_api as api
from payments import devchain
from payments.devchain import ChainInfo
from payments.store import PaymentStore

BUDGET = Decimal("0.05")

SCRIPT = """
import asyncio, sys
from datetime import timedelta

from yapapi import Golem, Task
from yapapi.events import WorkerFinished
from yapapi.payload import vm


async def worker(context, tasks):
    async for task in tasks:
        script = context.new_script(timeout=timedelta(minutes=5))
        script.run("/bin/sh", "-c", "sleep 300")
        yield script
        task.accept_result()


async def main(image_hash, image_url, budget):
    package = await vm.repo(image_hash=image_hash, image_url=image_url)
    lost = asyncio.Event()

    def on_worker_finished(event):
        if event.exc_info:  # the provider ended the activity under the worker
            print(f"worker stopped: {type(event.exc_info[1]).__name__}")
            lost.set()

    async with Golem(budget=float(budget), subnet_tag="public") as golem:
        golem.add_event_consumer(on_worker_finished, [WorkerFinished])

        async def job():
            tasks = golem.execute_tasks(worker, [Task(None)], package, timeout=timedelta(seconds=90))
            async for _ in tasks:
                print("finished")

        running = asyncio.ensure_future(job())
        await asyncio.wait([running, asyncio.ensure_future(lost.wait())], return_when=asyncio.FIRST_COMPLETED)
        if not running.done():
            await asyncio.sleep(5)  # let the provider's termination (it destroys the activity first) land
            print("giving up: the budget is spent and the provider stopped the work")
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
    print("script done")


asyncio.run(main(*sys.argv[1:4]))
"""

PROVIDER_ENV = {
    # 0.01 GLM per second of wall time, nothing for CPU: the budget lasts about five seconds.
    "GOLEM_PROVIDER_PRICING": '{"vm": {"duration_per_hour": "36", "cpu_per_hour": "0"}}',
    "GOLEM_PROVIDER_DEBIT_NOTE_INTERVAL_SEC": "1",
    "GOLEM_PROVIDER_MIN_DEBIT_NOTE_INTERVAL_SEC": "1",
    "GOLEM_PROVIDER_DEBIT_NOTE_ACCEPT_TIMEOUT_SEC": "30",
    "GOLEM_PROVIDER_MIN_DEBIT_NOTE_ACCEPT_TIMEOUT_SEC": "30",
    "GOLEM_PROVIDER_MIN_AGREEMENT_EXPIRATION_SEC": "10",
}


@pytest.mark.timeout(300)
async def test_budget_is_never_exceeded(tmp_path: Path, busybox: object, chain: ChainInfo) -> None:
    image, digest = busybox.archive, busybox.sha3_224  # type: ignore[attr-defined]
    script = tmp_path / "budget.py"
    script.write_text(SCRIPT)
    async with local_network(tmp_path, image, chain=chain, provider_env=PROVIDER_ENV) as net:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(script), digest, net.image_url, str(BUDGET),
            env=net.env(), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), 200)
        except TimeoutError:
            proc.kill()
            out, _ = await proc.communicate()
            pytest.fail(f"the script hung: {out.decode()[-3000:]}\n{net.logs()}")
        text = out.decode()
        assert "script done" in text, text + net.logs()
        assert "finished" not in text, text  # the task could not be paid for to the end

        # The provider broke the agreement for want of acceptances, and the work stopped.
        reasons = []
        broken: set[str] = set()
        for entry in await api(net, "/market-api/v1/agreements"):
            agreement = await api(net, f"/market-api/v1/agreements/{entry['id']}")
            if agreement["state"] == "Terminated":
                reason = await api(net, f"/market-api/v1/agreements/{entry['id']}/terminate/reason")
                reasons.append(reason.get("golem.provider.code"))
                if reason.get("golem.provider.code") == "DebitNotesDeadline":
                    broken.add(entry["id"])
                for activity_id in await api(net, f"/activity-api/v1/activity?agreementId={entry['id']}"):
                    state = await api(net, f"/activity-api/v1/activity/{activity_id}/state")
                    assert state["state"][0] == "Terminated", state
        assert "DebitNotesDeadline" in reasons, reasons

        # The provider still invoiced the agreement it broke (more than the budget left: unaccepted).
        async with asyncio.timeout(30):
            while not broken <= {i["agreementId"] for i in await api(net, "/payment-api/v1/invoices")}:
                await asyncio.sleep(0.5)

        # Accepted within the budget; some acceptances were refused.
        notes = await api(net, "/payment-api/v1/debitNotes")
        assert any(n["status"] == "RECEIVED" for n in notes), notes
        store = PaymentStore.open(net.root / "requestor" / "payments.db")
        try:
            spent = sum((a.spent for a in store.allocations()), Decimal(0))
            ordered = sum((Decimal(str(p.body["amount"])) for p in store.payments("requestor")), Decimal(0))
        finally:
            store.close()
        assert Decimal(0) < spent <= BUDGET, spent
        assert ordered <= spent, (ordered, spent)
        # Paid on chain: within the budget too (everything accepted, once the cycle has run).
        async with asyncio.timeout(30):
            while (
                paid := sum(
                    (t.amount for t in devchain.token_transfers(chain, sender=net.requestor_id)), Decimal(0)
                )
            ) < ordered:
                await asyncio.sleep(0.5)
        assert paid == ordered <= BUDGET, (paid, ordered)
