"""The service blueprint on three real providers: two stateful instances answer every round; the
provider of one is SIGKILLed mid-run, the instance starts again on the third provider and answers
the rest of the rounds (its state starts afresh there), the script exits 0, and the agreements of
the providers still alive end with accepted invoices, paid on the local chain."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from blueprints.localnet import invoices, local_network, wait_settled
from payments.devchain import ChainInfo
from tests.e2e.blueprint_support import SCRIPTS, crash_provider, provider_id, run_watching
from tests.e2e.conftest import assert_paid_on_chain

SERVICE = SCRIPTS / "service_failover.py"
ROUNDS = 8
KILL_AFTER_ROUND = 2
ANSWER = re.compile(
    r"^\[ *[\d.]+s\] round (\d+): (instance-\d) on (provider-\d): counter (\d+), served (\d+)$"
)


@pytest.mark.timeout(300)
async def test_an_instance_survives_its_provider_being_killed(
    tmp_path: Path, blueprints_image: object, chain: ChainInfo
) -> None:
    image, digest = blueprints_image.archive, blueprints_image.sha3_224  # type: ignore[attr-defined]
    answers: list[tuple[int, str, str, int, int]] = []
    killed: dict[str, str] = {}
    async with local_network(tmp_path, image, providers=3, chain=chain) as net:

        async def watch(line: str) -> None:
            found = ANSWER.match(line)
            if not found:
                return
            round_no, instance, provider, counter, served = found.groups()
            answers.append((int(round_no), instance, provider, int(counter), int(served)))
            if int(round_no) == KILL_AFTER_ROUND and instance == "instance-0" and not killed:
                killed.update(provider=provider)
                await crash_provider(net, provider)

        code, text, seconds = await run_watching(
            net, SERVICE, "--image-hash", digest, "--image-url", net.image_url,
            "--instances", "2", "--rounds", str(ROUNDS), "--interval", "0.5",
            on_line=watch,
        )  # fmt: skip
        print(f"service failover, {ROUNDS} rounds, one provider SIGKILLed: {seconds:.1f} s wall")
        assert code == 0, text + net.logs()
        assert killed, text
        victim = killed["provider"]

        # Every round was answered by both instances.
        for round_no in range(ROUNDS):
            assert sorted(i for r, i, *_ in answers if r == round_no) == ["instance-0", "instance-1"], text
        assert f"completed {ROUNDS} rounds with 2 instances" in text, text

        # instance-0 was told its provider was gone and started again on another one, which answered
        # every later round; its state (the requests served) started afresh there.
        after = [(p, served) for r, i, p, _, served in answers if i == "instance-0" and r > KILL_AFTER_ROUND]
        replacement = after[0][0]
        assert replacement != victim and {p for p, _ in after} == {replacement}, text
        assert [served for _, served in after] == list(range(1, len(after) + 1)), text
        assert re.search(rf"instance-0 lost {victim} \(.+\); starting it elsewhere", text), text
        assert f"instance-0 running again on {replacement}" in text, text
        assert f"instance-0 ran on {victim} then {replacement}" in text, text
        # instance-1 never moved, and its container kept its state all along.
        kept = [(p, served) for r, i, p, _, served in answers if i == "instance-1"]
        assert len({p for p, _ in kept}) == 1 and victim not in {p for p, _ in kept}, text
        assert [served for _, served in kept] == list(range(1, ROUNDS + 1)), text

        # The surviving agreements (instance-1's and the replacement's) were invoiced and accepted.
        received = await invoices(net)
        survivors = {provider_id(net, kept[0][0]), provider_id(net, replacement)}
        assert {str(i["issuerId"]).lower() for i in received} == survivors, received
        assert all(i["status"] in ("ACCEPTED", "SETTLED") for i in received), received
        assert "cost: " in text and "(2 invoice(s) accepted)" in text, text
        assert_paid_on_chain(net, await wait_settled(net, providers=3))
