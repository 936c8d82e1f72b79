"""Service model with failover: instances of a stateful service that the requestor talks to in rounds;
an instance whose provider dies is started again on another provider and the rounds go on.

    python blueprints/scripts/service_failover.py --image-hash HASH --image-url URL
        [--instances 2] [--rounds 10] [--interval 1]

(with YAGNA_APPKEY / YAGNA_API_URL set as in the README; ``--registry URL`` instead of
``--image-url`` resolves the hash through a package registry). ``python -m blueprints.run service``
builds the image, pushes it to the devnet and runs this.

Each instance starts a background counter in its container (a ``sh`` loop that outlives the
command that started it) and keeps a log of the requests it served in ``/golem/work``. Every
round, the requestor asks every instance for its counter and how many requests its container has
served, and prints the answers.

Failover: yapapi 0.13.1 restarts an instance when its ``restart_condition`` is true, by default only
for an instance that failed before it ever reached ``running`` (there is no
``respawn_unstarted_instances`` in this version). :class:`KeyValue` widens the condition to "lost
its provider while running": its handler notes the failure, yapapi ends that agreement, calls
:meth:`KeyValue.reset` and signs a new agreement, and the instance starts again on the provider it
gets. The request that was in flight is asked again there. The state in the old container is gone
with it, which the answers show (the request count starts again).

At the end the script prints which providers each instance ran on and what the invoices cost.
A provider that died cannot send an invoice, so yapapi waits up to 30 s for it before it exits.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from yapapi import Golem
from yapapi.events import CommandEvent
from yapapi.payload import Payload, vm
from yapapi.script import Script
from yapapi.services import Service

from blueprints.report import Costs, reason

COUNTER = "n=0; while true; do n=$((n+1)); echo $n > /golem/work/count; sleep 0.2; done"
ROUND_TIMEOUT = 180.0
"""How long one round may take: long enough for an instance to be started again elsewhere."""
COMMAND_TIMEOUT = timedelta(seconds=30)

STARTED = time.perf_counter()


def say(text: str) -> None:
    print(f"[{time.perf_counter() - STARTED:6.1f}s] {text}", flush=True)


@dataclass
class Answer:
    instance: str
    provider: str
    counter: int
    served: int


@dataclass
class Request:
    round: int
    answer: asyncio.Future[Answer] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class KeyValue(Service):
    """One instance of the service; the requestor talks to it through :meth:`ask`."""

    image_hash = ""
    image_url: str | None = None
    registry: str | None = None
    closing = False
    """Set before the cluster is stopped: from then on a failure is not a reason to restart."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.inbox: asyncio.Queue[Request] = asyncio.Queue()
        self.in_flight: Request | None = None
        self.failure: BaseException | None = None
        """Why the last command failed, when run() saw it fail."""
        self.handled: BaseException | None = None
        """The failure the instance was last restarted for."""
        self.providers: list[str] = []

    @staticmethod
    async def get_payload() -> Payload:
        if KeyValue.image_url:
            return await vm.repo(image_hash=KeyValue.image_hash, image_url=KeyValue.image_url)
        return await vm.repo(image_hash=KeyValue.image_hash, repository_url=str(KeyValue.registry))

    @property
    def provider(self) -> str:
        return (self._ctx.provider_name if self._ctx else None) or "?"

    async def ask(self, round_no: int) -> Answer:
        request = Request(round_no)
        await self.inbox.put(request)
        return await request.answer

    async def start(self) -> AsyncGenerator[Script, Awaitable[list[CommandEvent]]]:
        async for script in super().start():  # deploy and start the container
            yield script
        assert self._ctx is not None  # yapapi sets it before start()
        script = self._ctx.new_script(timeout=COMMAND_TIMEOUT)
        script.run("/bin/sh", "-c", f"/bin/sh -c '{COUNTER}' > /dev/null 2>&1 &")
        yield script
        self.providers.append(self.provider)
        again = " again" if len(self.providers) > 1 else ""
        say(f"{self.name} running{again} on {self.provider}")

    async def run(self) -> AsyncGenerator[Script, Awaitable[list[CommandEvent]]]:
        assert self._ctx is not None
        while True:
            request = self.in_flight or await self.inbox.get()
            self.in_flight = request
            script = self._ctx.new_script(timeout=COMMAND_TIMEOUT)
            served = script.run(
                "/bin/sh",
                "-c",
                f"echo round={request.round} >> /golem/work/requests;"
                " echo $(cat /golem/work/count) $(wc -l < /golem/work/requests)",
            )
            try:
                yield script
                result: Any = await served
                counter, count = (int(v) for v in str(result.stdout).split())
            except Exception as exc:  # the command failed in the container: see restart_condition
                self.failure = exc
                return
            self.in_flight = None
            request.answer.set_result(Answer(self.name, self.provider, counter, count))

    async def shutdown(self) -> AsyncGenerator[Script, Awaitable[list[CommandEvent]]]:
        failure = self.failure or self.exc_info[1]
        if failure is not None and failure is not self.handled:
            # yapapi stops an instance whose provider is gone (an Activity API error, which yapapi
            # logs, or the failed command run() caught). Keep the reason: yapapi clears exc_info
            # when this handler ends, before it asks restart_condition. And send no `terminate`:
            # there is no activity left to receive it.
            self.failure = failure
            say(f"{self.name} lost {self.provider} ({reason(failure)}); starting it elsewhere")
            return
        async for script in super().shutdown():
            yield script

    @property
    def restart_condition(self) -> bool:
        # yapapi's own condition restarts only instances that never reached `running`; this one
        # restarts any instance that failed (in start(): exc_info; while running: self.failure),
        # unless the requestor is stopping the cluster.
        failure = self.failure or self.exc_info[1]
        return failure is not None and failure is not self.handled and not KeyValue.closing

    async def reset(self) -> None:
        # Called by yapapi before the instance goes back to `pending`. The request in flight
        # (self.in_flight) stays, so the next container answers it.
        self.handled = self.failure or self.exc_info[1]
        self.failure = None


async def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout:.0f} s")
        await asyncio.sleep(0.2)


async def main(args: argparse.Namespace) -> int:
    KeyValue.image_hash, KeyValue.image_url = args.image_hash, args.image_url
    KeyValue.registry = args.registry
    costs = Costs()
    params = [{"name": f"instance-{n}"} for n in range(args.instances)]
    async with Golem(budget=args.budget, subnet_tag=args.subnet_tag) as golem:
        golem.add_event_consumer(costs)
        expiration = datetime.now(UTC) + timedelta(minutes=30)
        cluster = await golem.run_service(KeyValue, instance_params=params, expiration=expiration)
        instances = cluster.instances
        running = lambda: all(i.state.value == "running" for i in instances)  # noqa: E731
        await wait_until(running, ROUND_TIMEOUT, "starting every instance")
        say(f"{len(instances)} instances running")
        for round_no in range(args.rounds):
            answers = await asyncio.wait_for(
                asyncio.gather(*(i.ask(round_no) for i in instances)), ROUND_TIMEOUT
            )
            for a in answers:
                say(f"round {round_no}: {a.instance} on {a.provider}: counter {a.counter}, served {a.served}")
            await asyncio.sleep(args.interval)
        say(f"completed {args.rounds} rounds with {len(instances)} instances")
        KeyValue.closing = True
        cluster.stop()  # type: ignore[no-untyped-call]
        await wait_until(
            lambda: all(i.state.value == "terminated" for i in instances), 60, "stopping every instance"
        )
        say("all instances stopped; waiting for invoices")
    for instance in instances:
        say(f"{instance.name} ran on {' then '.join(instance.providers)}")
    say(str(costs))
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--image-hash", required=True, help="sha3-224 of the payload image")
    parser.add_argument("--image-url", help="where providers download the image")
    parser.add_argument("--registry", help="a package registry resolving --image-hash (e.g. the market node)")
    parser.add_argument("--instances", type=int, default=2, help="service instances (default: 2)")
    parser.add_argument("--rounds", type=int, default=10, help="rounds of requests (default: 10)")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between rounds (default: 1)")
    parser.add_argument("--budget", type=float, default=5.0, help="GLM to allocate (default: 5)")
    parser.add_argument("--subnet-tag", default="public")
    parser.add_argument("--log-file", type=Path, help="also write yapapi's debug log here")
    args = parser.parse_args(argv)
    if not (args.image_url or args.registry):
        parser.error("give --image-url, or --registry to resolve --image-hash")
    if args.instances < 1 or args.rounds < 1:
        parser.error("--instances and --rounds must be at least 1")
    return args


def configure_logging(log_file: Path | None) -> None:
    """yapapi reports what goes wrong on the network through logging: its warnings and errors go to
    stderr, and everything to ``log_file`` when given."""
    console = logging.StreamHandler()
    console.setLevel(logging.WARNING)
    console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handlers: list[logging.Handler] = [console]
    if log_file is not None:
        to_file = logging.FileHandler(log_file)
        to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handlers.append(to_file)
    logging.basicConfig(level=logging.DEBUG if log_file else logging.WARNING, handlers=handlers)


if __name__ == "__main__":
    options = parse_args()
    configure_logging(options.log_file)
    sys.exit(asyncio.run(main(options)))
