"""How long matching one new subscription against the live market takes, index versus full scan.

Run: ``.venv/bin/python tests/benchmarks/bench_matching.py [--quick]``. Not collected by pytest (the
``bench_`` prefix), and not a timed assertion: it prints figures and the ratio against a brute-force
scan measured in the same run, on the same data, and checks both give the same ids.

The data is shaped like spec §4.4 (yapapi demands) and §4.5 (ya-provider offers) with the variety a
public market has: many subnets, runtimes, payment platforms, memory/storage/thread sizes and
capability sets, and every offer constraint carrying its own creation timestamp. The "all match"
rows are the worst case for any index: every live entry passes every condition, so every one has to
be verified.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
from dataclasses import dataclass
from typing import Any

from market.hub.matching import MatchIndex
from market.props import Constraint, Tri, parse_constraints

NOW_MS = 1_795_261_523_052
SUBNETS = ["public"] * 6 + ["devnet-beta"] * 3 + [f"team-{i}" for i in range(40)]
RUNTIMES = ["vm"] * 5 + ["wasmtime"] * 2 + ["vm-nvidia", "automatic", "outbound-gateway"]
PLATFORMS = ["erc20-holesky-tglm", "erc20-polygon-glm", "erc20-mainnet-glm"]
MEM = [1, 2, 4, 8, 16, 32, 64, 128]
STORAGE = [8.0, 16.0, 32.0, 64.0, 128.0, 512.0]
THREADS = [1, 2, 4, 8, 16, 32, 64]
CAPS = ["vpn", "inet", "manifest-support", "start-entrypoint"]


@dataclass
class Sub:
    id: str
    owner: str
    props: dict[str, Any]
    constraint: Constraint


def make_offer(rng: random.Random, i: int, *, all_match: bool = False) -> Sub:
    subnet = "public" if all_match else rng.choice(SUBNETS)
    runtime = "vm" if all_match else rng.choice(RUNTIMES)
    platforms = PLATFORMS if all_match else rng.sample(PLATFORMS, rng.randint(1, 2))
    props: dict[str, Any] = {
        "golem.com.scheme": "payu",
        "golem.com.pricing.model": "linear",
        "golem.com.pricing.model.linear.coeffs": [rng.random() / 1e3, rng.random() / 1e4, 0.0],
        "golem.com.usage.vector": ["golem.usage.cpu_sec", "golem.usage.duration_sec"],
        "golem.com.payment.protocol.version": 3,
        "golem.com.payment.debit-notes.accept-timeout?": 240,
        "golem.com.scheme.payu.debit-note.interval-sec?": 120,
        "golem.com.scheme.payu.payment-timeout-sec?": 120,
        "golem.node.debug.subnet": subnet,
        "golem.node.id.name": f"provider-{i}",
        "golem.node.net.is-public": rng.random() < 0.2,
        "golem.runtime.name": runtime,
        "golem.runtime.version": rng.choice(["0.3.0", "0.4.1", "0.4.2"]),
        "golem.runtime.capabilities": CAPS if all_match else rng.sample(CAPS, rng.randint(0, 4)),
        "golem.inf.mem.gib": 128.0 if all_match else float(rng.choice(MEM)),
        "golem.inf.storage.gib": 512.0 if all_match else rng.choice(STORAGE),
        "golem.inf.cpu.threads": 64 if all_match else rng.choice(THREADS),
        "golem.inf.cpu.cores": 32,
        "golem.inf.cpu.architecture": "x86_64",
        "golem.srv.caps.multi-activity": True,
        "golem.srv.caps.payload-manifest": True,
        "golem.activity.caps.transfer.protocol": ["gftp", "http", "https"],
    }
    for p in platforms:
        props[f"golem.com.payment.platform.{p}.address"] = f"0x{i:040x}"
    created = NOW_MS - rng.randint(0, 86_400_000)  # each provider's constraint is its own text
    constraint = parse_constraints(
        f"(&(golem.srv.comp.expiration>{created})(golem.node.debug.subnet={subnet}))"
    )
    return Sub(f"offer-{i}", f"0xprovider{i}", props, constraint)


def make_demand(rng: random.Random, i: int, *, all_match: bool = False) -> Sub:
    subnet = "public" if all_match else rng.choice(SUBNETS)
    runtime = "vm" if all_match else rng.choice(RUNTIMES)
    platform = PLATFORMS[0] if all_match else rng.choice(PLATFORMS)
    mem = 0.5 if all_match else rng.choice([0.5, 1, 2, 4, 8, 16, 32])
    storage = 2.0 if all_match else rng.choice([2.0, 8.0, 32.0, 64.0])
    threads = 1 if all_match else rng.choice([1, 1, 2, 4, 8, 16])
    vm_group = [
        f"(golem.inf.mem.gib>={mem})",
        f"(golem.inf.storage.gib>={storage})",
        f"(golem.inf.cpu.threads>={threads})",
        f"(golem.runtime.name={runtime})",
    ]
    if not all_match and rng.random() < 0.3:
        vm_group.append("(golem.runtime.capabilities=vpn)")
    text = "\n\t".join(
        [
            f"(&(golem.node.debug.subnet={subnet})",
            f"(|(golem.com.payment.platform.{platform}.address=*))",
            "(golem.com.payment.protocol.version>1)",
            "(golem.com.pricing.model=linear)",
            "(&" + "\n\t".join(vm_group) + "))",
        ]
    )
    props = {
        "golem.srv.comp.expiration": NOW_MS + 900_000,
        "golem.srv.caps.multi-activity": True,
        "golem.node.debug.subnet": subnet,
        f"golem.com.payment.platform.{platform}.address": f"0x{i:040x}",
        "golem.com.payment.protocol.version": "3",
        "golem.srv.comp.task_package": f"hash:sha3:{i:056x}:http://registry/image.gvmi",
        "golem.srv.comp.vm.package_format": "gvmkit-squash",
    }
    return Sub(f"demand-{i}", f"0xrequestor{i}", props, parse_constraints(text))


def brute_force(live: list[Sub], new: Sub) -> list[str]:
    """Both directions on every live entry, with pre-compiled constraints: the fair baseline."""
    mine = new.constraint.evaluator
    out = []
    for s in live:
        if (
            s.owner != new.owner
            and mine(s.props) is Tri.TRUE
            and s.constraint.evaluate(new.props) is Tri.TRUE
        ):
            out.append(s.id)
    return out


def p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


ROW = "{:<33} {:>7} {:>8} {:>8} {:>8} {:>9} {:>8} {:>8} {:>8}"
HEADER = ROW.format(
    "scenario (ms unless noted)", "live", "matched", "median", "p95", "brute", "speedup", "add us", "1st q"
)


def scenario(
    name: str, live: int, *, offers_side: bool, all_match: bool, queries: int, brute_runs: int
) -> None:
    rng = random.Random(live * 7 + all_match)
    make_live, make_new = (make_offer, make_demand) if offers_side else (make_demand, make_offer)
    entries = [make_live(rng, i, all_match=all_match) for i in range(live)]
    news = [make_new(rng, live + q, all_match=all_match) for q in range(queries + 1)]

    index = MatchIndex()
    add = index.add_offer if offers_side else index.add_demand
    gc.collect()
    t0 = time.perf_counter()
    for s in entries:
        add(s.id, s.owner, s.props, s.constraint)
    add_us = (time.perf_counter() - t0) / live * 1e6

    query = index.match_demand if offers_side else index.match_offer
    # The first query also indexes the keys it mentions (keys are indexed on first use): shown apart.
    t0 = time.perf_counter()
    query(news[0].owner, news[0].props, news[0].constraint)
    first_ms = (time.perf_counter() - t0) * 1e3

    index_ms: list[float] = []
    brute_ms: list[float] = []
    matched: list[int] = []
    gc.collect()
    for q, new in enumerate(news[1:]):
        t0 = time.perf_counter()
        got = query(new.owner, new.props, new.constraint)
        index_ms.append((time.perf_counter() - t0) * 1e3)
        matched.append(len(got))
        if q < brute_runs:
            t0 = time.perf_counter()
            expected = brute_force(entries, new)
            brute_ms.append((time.perf_counter() - t0) * 1e3)
            assert got == expected, f"index and brute force disagree on {new.id}"
    med, brute_med = statistics.median(index_ms), statistics.median(brute_ms)
    paired = statistics.median(index_ms[: len(brute_ms)])  # the ratio compares the same queries
    print(
        ROW.format(
            name,
            live,
            f"{statistics.median(matched):.0f}",
            f"{med:.2f}",
            f"{p95(index_ms):.2f}",
            f"{brute_med:.1f}",
            f"{brute_med / paired:.0f}x",
            f"{add_us:.0f}",
            f"{first_ms:.0f}",
        ),
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 000 live entries only")
    args = parser.parse_args()
    print(HEADER)
    print(
        "  matched: median ids returned; median/p95: one match_* call; brute: both directions evaluated on\n"
        "  every live entry (pre-compiled constraints); add us: add_* per entry; 1st q: first query (ms),\n"
        "  which also indexes keys outside STANDARD_KEYS that the query mentions",
        flush=True,
    )
    sizes = [10_000] if args.quick else [10_000, 100_000]
    for live in sizes:
        big = live >= 100_000
        scenario(
            "new demand vs offers, mix",
            live,
            offers_side=True,
            all_match=False,
            queries=60,
            brute_runs=5 if big else 15,
        )
        scenario(
            "new demand vs offers, all match",
            live,
            offers_side=True,
            all_match=True,
            queries=20 if big else 30,
            brute_runs=3 if big else 10,
        )
    scenario(
        "new offer vs demands, mix", 10_000, offers_side=False, all_match=False, queries=60, brute_runs=15
    )
    scenario(
        "new offer vs demands, all match",
        10_000,
        offers_side=False,
        all_match=True,
        queries=30,
        brute_runs=10,
    )


if __name__ == "__main__":
    main()
