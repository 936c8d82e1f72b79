"""MatchIndex must answer exactly what brute-force ``match()`` over every live entry answers.

The index only prunes candidates, so the property that matters is equivalence: random markets with
the awkward cases (numbers sent as strings, lists, wildcards, presence, null, objects, Or/Not,
aspects, typed comparisons) are matched both ways and compared with the plain evaluator.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from market.hub.matching import DuplicateEntryError, MatchIndex
from market.props import (
    And,
    Compare,
    Constraint,
    Node,
    Not,
    Op,
    Or,
    Present,
    Tri,
    ValueType,
    match,
    parse_constraints,
)

KEYS = ["subnet", "runtime", "mem", "caps", "flag"]
PROP_VALUES: list[Any] = [
    "public",
    "private",
    "vm",
    "vm-nvidia",
    "wasmtime",
    "3",
    "1.5",
    "true",
    "",
    "1.2.3",
    "2024-01-01T00:00:00Z",
    "[vpn,inet]",
    3,
    3.0,
    1.5,
    0,
    -1,
    2**70,
    float("nan"),
    True,
    False,
    ["vpn", "inet"],
    ["vpn"],
    [3, "a"],
    [True],
    [],
    [["vpn"]],
    {},
    None,
]
CONSTRAINT_VALUES = [
    "public",
    "pub*",
    "*lic",
    "vm*",
    "v*m",
    "3",
    "3.0",
    "1.5",
    "0",
    "-1",
    "1e30",
    "true",
    "TRUE",
    "false",
    "vpn",
    "[vpn,inet]",
    "[inet, vpn]",
    "[]",
    "",
    "abc",
    "1.2.0",
    "2023-06-01T00:00:00+02:00",
    "nan",
    "inf",
]


def random_props(rng: random.Random) -> dict[str, Any]:
    return {k: rng.choice(PROP_VALUES) for k in KEYS if rng.random() < 0.85}


def random_leaf(rng: random.Random) -> Node:
    key = rng.choice(KEYS)
    roll = rng.random()
    if roll < 0.15:
        return Present(key, aspect="a" if rng.random() < 0.1 else None)
    value = rng.choice(CONSTRAINT_VALUES)
    op = rng.choice([Op.EQ, Op.EQ, Op.EQ, Op.GE, Op.LE, Op.LT, Op.GT])
    if op in (Op.LT, Op.GT) and value.startswith("="):
        op = Op.EQ
    if roll < 0.2:
        return Compare(key, op, value, value_type=rng.choice(list(ValueType)))
    if roll < 0.22:
        return Compare(key, op, value, aspect="x")
    return Compare(key, op, value)


def random_node(rng: random.Random, depth: int = 0) -> Node:
    roll = rng.random()
    if depth >= 3 or roll < 0.45:
        return random_leaf(rng)
    if roll < 0.75:
        return And(tuple(random_node(rng, depth + 1) for _ in range(rng.randint(0, 4))))
    if roll < 0.92:
        return Or(tuple(random_node(rng, depth + 1) for _ in range(rng.randint(0, 3))))
    return Not(random_node(rng, depth + 1))


def random_constraint(rng: random.Random) -> Constraint:
    return Constraint(And(tuple(random_node(rng) for _ in range(rng.randint(0, 3)))))


def leaves_of(node: Node) -> list[Node]:
    if isinstance(node, Compare | Present):
        return [node]
    if isinstance(node, Not):
        return leaves_of(node.child)
    return [leaf for child in node.children for leaf in leaves_of(child)]


Entry = tuple[str, str, dict[str, Any], Constraint]


def brute_force(
    entries: dict[str, Entry],
    owner: str,
    props: dict[str, Any],
    constraint: Constraint,
    *,
    new_is_demand: bool,
) -> list[str]:
    out = []
    for entry_id, entry_owner, entry_props, entry_constraint in entries.values():
        if entry_owner == owner:
            continue
        if new_is_demand:
            result = match(props, constraint, entry_props, entry_constraint)
        else:
            result = match(entry_props, entry_constraint, props, constraint)
        if result.matched:
            out.append(entry_id)
    return out


def run_market(seed: int, n_offers: int, n_demands: int, n_queries: int, *, eager: bool = False) -> None:
    rng = random.Random(seed)
    # eager: every key indexed from the start; lazy: each key indexed when a query first needs it,
    # i.e. after entries were added and removed
    index = MatchIndex(indexed_keys=KEYS if eager else ())
    offers: dict[str, Entry] = {}
    demands: dict[str, Entry] = {}
    owners = ["alice", "bob", "carol"]
    for i in range(n_offers):
        entry = (f"o{i}", rng.choice(owners), random_props(rng), random_constraint(rng))
        offers[entry[0]] = entry
        index.add_offer(*entry)
    for i in range(n_demands):
        entry = (f"d{i}", rng.choice(owners), random_props(rng), random_constraint(rng))
        demands[entry[0]] = entry
        index.add_demand(*entry)
    # churn: drop some of each so removal paths are exercised before querying
    for table, remove in ((offers, index.remove_offer), (demands, index.remove_demand)):
        for entry_id in rng.sample(sorted(table), len(table) // 4):
            del table[entry_id]
            remove(entry_id)
    assert index.offer_count == len(offers)
    assert index.demand_count == len(demands)
    for _ in range(n_queries):
        owner = rng.choice([*owners, "dave"])
        props = random_props(rng)
        constraint = random_constraint(rng)
        assert index.match_demand(owner, props, constraint) == brute_force(
            offers, owner, props, constraint, new_is_demand=True
        ), (props, str(constraint))
        assert index.match_offer(owner, props, constraint) == brute_force(
            demands, owner, props, constraint, new_is_demand=False
        ), (props, str(constraint))
        # one direction, for the whole constraint and for each leaf alone: every leaf kind's
        # candidate set (and its claim to be exact) is checked on its own
        leaves = [Constraint(leaf) for leaf in leaves_of(constraint.root)]
        for c in [constraint, *leaves, Constraint(And(tuple(leaf.root for leaf in leaves[:2])))]:
            expected = [e[0] for e in offers.values() if c.evaluate(e[2]) is Tri.TRUE]
            assert index.offers_satisfying(c) == expected, str(c)
            expected = [e[0] for e in demands.values() if c.evaluate(e[2]) is Tri.TRUE]
            assert index.demands_satisfying(c) == expected, str(c)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(min_value=0, max_value=2**32), st.booleans())
def test_index_equals_brute_force_on_random_markets(seed: int, eager: bool) -> None:
    run_market(seed, n_offers=40, n_demands=20, n_queries=8, eager=eager)


@pytest.mark.parametrize(("seed", "eager"), [(0, False), (1, True), (2, False)])
def test_index_equals_brute_force_on_larger_markets(seed: int, eager: bool) -> None:
    run_market(seed, n_offers=400, n_demands=150, n_queries=25, eager=eager)


# --- realistic shapes -----------------------------------------------------------------------------

DEMAND = parse_constraints(
    "(&(golem.node.debug.subnet=public)\n\t(|(golem.com.payment.platform.erc20-holesky-tglm.address=*))"
    "\n\t(golem.com.payment.protocol.version>1)\n\t(golem.com.pricing.model=linear)"
    "\n\t(&(golem.inf.mem.gib>=0.5)\n\t(golem.inf.storage.gib>=2.0)\n\t(golem.inf.cpu.threads>=1)"
    "\n\t(golem.runtime.name=vm)))"
)
DEMAND_PROPS = {
    "golem.srv.comp.expiration": 1795262423052,
    "golem.srv.caps.multi-activity": True,
    "golem.node.debug.subnet": "public",
    "golem.com.payment.platform.erc20-holesky-tglm.address": "0xrequestor",
    "golem.com.payment.protocol.version": "3",
}


def offer_props(subnet: str = "public", runtime: str = "vm", mem: float = 4.0) -> dict[str, Any]:
    return {
        "golem.node.debug.subnet": subnet,
        "golem.com.payment.platform.erc20-holesky-tglm.address": "0xprovider",
        "golem.com.payment.protocol.version": 3,
        "golem.com.pricing.model": "linear",
        "golem.inf.mem.gib": mem,
        "golem.inf.storage.gib": 20.0,
        "golem.inf.cpu.threads": 4,
        "golem.runtime.name": runtime,
    }


def offer_constraint(subnet: str = "public") -> Constraint:
    return parse_constraints(
        f"(&(golem.srv.comp.expiration>1700000000000)(golem.node.debug.subnet={subnet}))"
    )


def test_realistic_demand_finds_matching_offers_in_insertion_order() -> None:
    index = MatchIndex()
    index.add_offer("o1", "p1", offer_props(), offer_constraint())
    index.add_offer("o2", "p2", offer_props(subnet="private"), offer_constraint("private"))
    index.add_offer("o3", "p3", offer_props(runtime="wasmtime"), offer_constraint())
    index.add_offer("o4", "p4", offer_props(mem=0.25), offer_constraint())
    index.add_offer("o5", "p5", offer_props(), offer_constraint())
    assert index.match_demand("r", DEMAND_PROPS, DEMAND) == ["o1", "o5"]


def test_same_owner_never_matches() -> None:
    index = MatchIndex()
    index.add_offer("o1", "node-a", offer_props(), offer_constraint())
    index.add_offer("o2", "node-b", offer_props(), offer_constraint())
    assert index.match_demand("node-a", DEMAND_PROPS, DEMAND) == ["o2"]
    index.add_demand("d1", "node-b", DEMAND_PROPS, DEMAND)
    index.add_demand("d2", "node-c", DEMAND_PROPS, DEMAND)
    assert index.match_offer("node-b", offer_props(), offer_constraint()) == ["d2"]


def test_offer_constraint_is_checked_against_the_demand() -> None:
    index = MatchIndex()
    index.add_offer("o1", "p", offer_props(), offer_constraint())
    expired = dict(DEMAND_PROPS, **{"golem.srv.comp.expiration": 1600000000000})
    assert index.match_demand("r", expired, DEMAND) == []
    assert index.match_demand("r", DEMAND_PROPS, DEMAND) == ["o1"]


def test_add_and_remove() -> None:
    index = MatchIndex()
    index.add_offer("o1", "p", offer_props(), offer_constraint())
    index.add_demand("d1", "r", DEMAND_PROPS, DEMAND)
    assert (index.offer_count, index.demand_count) == (1, 1)
    with pytest.raises(DuplicateEntryError):
        index.add_offer("o1", "p", offer_props(), offer_constraint())
    with pytest.raises(DuplicateEntryError):
        index.add_demand("d1", "r", DEMAND_PROPS, DEMAND)
    index.remove_offer("o1")
    index.remove_offer("o1")  # idempotent
    index.remove_demand("d1")
    index.remove_demand("nope")
    assert (index.offer_count, index.demand_count) == (0, 0)
    assert index.match_demand("r", DEMAND_PROPS, DEMAND) == []
    assert index.match_offer("p", offer_props(), offer_constraint()) == []
    # a removed id may come back, and is then found again
    index.add_offer("o1", "p", offer_props(), offer_constraint())
    assert index.match_demand("r", DEMAND_PROPS, DEMAND) == ["o1"]


def test_index_keeps_its_own_copy_of_props() -> None:
    index = MatchIndex()
    props = offer_props()
    index.add_offer("o1", "p", props, offer_constraint())
    props["golem.runtime.name"] = "wasmtime"
    assert index.match_demand("r", DEMAND_PROPS, DEMAND) == ["o1"]
    index.remove_offer("o1")
    assert index.offers_satisfying(parse_constraints("(golem.runtime.name=*)")) == []


@pytest.mark.parametrize(
    ("constraint", "expected"),
    [
        ("()", ["o1", "o2", "o3", "o4"]),
        ("(golem.runtime.name=vm)", ["o1", "o2", "o4"]),
        ("(golem.runtime.name=v*)", ["o1", "o2", "o4"]),
        ("(golem.inf.mem.gib>=8)", ["o2", "o3"]),
        ("(golem.inf.mem.gib>=8.0)", ["o2", "o3"]),
        ("(&(golem.runtime.name=vm)(golem.inf.mem.gib>=8))", ["o2"]),
        ("(|(golem.runtime.name=wasmtime)(golem.node.debug.subnet=private))", ["o3", "o4"]),
        ("(!(golem.runtime.name=vm))", ["o3"]),
        ("(golem.runtime.capabilities=vpn)", ["o4"]),
        ("(golem.runtime.capabilities=*)", ["o4"]),
        ("(golem.inf.mem.gib=16)", ["o3"]),
        ("(golem.com.payment.protocol.version>2)", ["o1", "o2", "o3", "o4"]),
        ("(golem.node.debug.subnet[aspect]=public)", []),
        ("(|)", []),
    ],
)
def test_offers_satisfying(constraint: str, expected: list[str]) -> None:
    index = MatchIndex()
    index.add_offer("o1", "p", offer_props(), offer_constraint())
    index.add_offer("o2", "p", offer_props(mem=8), offer_constraint())
    index.add_offer("o3", "q", offer_props(runtime="wasmtime", mem=16), offer_constraint())
    caps = dict(offer_props(subnet="private"), **{"golem.runtime.capabilities": ["vpn", "inet"]})
    index.add_offer("o4", "q", caps, offer_constraint("private"))
    assert index.offers_satisfying(parse_constraints(constraint)) == expected


def test_anchor_spreads_demands_and_still_finds_all() -> None:
    # Demands whose only required equality differs per subnet: the new offer must meet just its own.
    index = MatchIndex()
    for i in range(50):
        c = parse_constraints(f"(&(golem.node.debug.subnet=s{i % 5})(golem.runtime.name=vm))")
        index.add_demand(f"d{i}", f"r{i}", {"golem.node.debug.subnet": f"s{i % 5}"}, c)
    found = index.match_offer(
        "p", offer_props(subnet="s3"), parse_constraints("(golem.node.debug.subnet=s3)")
    )
    assert found == [f"d{i}" for i in range(50) if i % 5 == 3]


def test_residual_keeps_other_clauses_on_the_anchor_key() -> None:
    # Entries are filed under one equality and, once it is known true, only the rest is evaluated:
    # the rest must still include every other clause, also those on the same key.
    index = MatchIndex()
    constraints = {
        "o1": "(&(subnet=public)(subnet=pub*))",
        "o2": "(&(subnet=public)(subnet<a))",
        "o3": "(&(subnet=public)(|(subnet=public))(mem>1))",
        "o4": "(&(subnet=public)(!(subnet=public)))",
        "o5": "(&(subnet=public)(&(subnet=public)))",
    }
    entries = {}
    for offer_id, text in constraints.items():
        entries[offer_id] = (offer_id, "p", {"subnet": "public"}, parse_constraints(text))
        index.add_offer(*entries[offer_id])
    for mem in (0, 2):
        props = {"subnet": "public", "mem": mem}
        found = index.match_demand("r", props, parse_constraints("()"))
        assert found == brute_force(entries, "r", props, parse_constraints("()"), new_is_demand=True)
        assert found == (["o1", "o5"] if mem == 0 else ["o1", "o3", "o5"])
