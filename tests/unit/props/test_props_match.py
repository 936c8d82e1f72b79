"""Two-way matching of what yapapi sends (spec §4.4) with what a provider offers (§4.5), and why not."""

from __future__ import annotations

from typing import Any

import pytest

from market.props import ConstraintSyntaxError, Tri, explain, match, parse_constraints

NOW_MS = 1_795_261_523_052

DEMAND_PROPS: dict[str, Any] = {
    "golem.srv.comp.expiration": NOW_MS + 900_000,
    "golem.srv.caps.multi-activity": True,
    "golem.node.debug.subnet": "public",
    "golem.com.payment.platform.erc20-holesky-tglm.address": "0x" + "1" * 40,
    "golem.com.payment.protocol.version": "3",
    "golem.srv.comp.task_package": "hash:sha3:" + "ab" * 28 + ":http://registry/image.gvmi",
    "golem.srv.comp.vm.package_format": "gvmkit-squash",
}
DEMAND_CONSTRAINTS = (
    "(&(golem.node.debug.subnet=public)\n\t(|(golem.com.payment.platform.erc20-holesky-tglm.address=*))"
    "\n\t(golem.com.payment.protocol.version>1)\n\t(golem.com.pricing.model=linear)"
    "\n\t(&(golem.inf.mem.gib>=0.5)\n\t(golem.inf.storage.gib>=2.0)\n\t(golem.inf.cpu.threads>=1)"
    "\n\t(golem.runtime.name=vm)))"
)

OFFER_PROPS: dict[str, Any] = {
    "golem.com.scheme": "payu",
    "golem.com.pricing.model": "linear",
    "golem.com.pricing.model.linear.coeffs": [0.0001, 0.00005, 0.0],
    "golem.com.usage.vector": ["golem.usage.cpu_sec", "golem.usage.duration_sec"],
    "golem.com.payment.platform.erc20-holesky-tglm.address": "0x" + "2" * 40,
    "golem.com.payment.protocol.version": 3,
    "golem.com.payment.debit-notes.accept-timeout?": 240,
    "golem.com.scheme.payu.debit-note.interval-sec?": 120,
    "golem.com.scheme.payu.payment-timeout-sec?": 120,
    "golem.node.debug.subnet": "public",
    "golem.node.id.name": "provider-1",
    "golem.node.net.is-public": False,
    "golem.runtime.name": "vm",
    "golem.runtime.version": "0.3.0",
    "golem.runtime.capabilities": ["vpn", "inet", "manifest-support", "start-entrypoint"],
    "golem.inf.mem.gib": 4.0,
    "golem.inf.storage.gib": 20.5,
    "golem.inf.cpu.threads": 4,
    "golem.inf.cpu.cores": 2,
    "golem.inf.cpu.architecture": "x86_64",
    "golem.srv.caps.multi-activity": True,
    "golem.srv.caps.payload-manifest": True,
    "golem.activity.caps.transfer.protocol": ["gftp", "http", "https"],
}
OFFER_CONSTRAINTS = f"(&(golem.srv.comp.expiration>{NOW_MS})(golem.node.debug.subnet=public))"


def test_yapapi_demand_matches_a_complete_offer() -> None:
    result = match(DEMAND_PROPS, DEMAND_CONSTRAINTS, OFFER_PROPS, OFFER_CONSTRAINTS)
    assert result.matched
    assert (result.demand_side, result.offer_side) == (Tri.TRUE, Tri.TRUE)
    assert result.explain() == "demand and offer match"


def test_parsed_constraints_and_nested_props_are_accepted() -> None:
    nested_offer = {k: v for k, v in OFFER_PROPS.items() if not k.startswith("golem.com.pricing")}
    nested_offer["golem"] = {
        "com": {"pricing": {"model": {"@tag": "linear", "linear": {"coeffs": [0.1, 0.0]}}}}
    }
    result = match(
        DEMAND_PROPS,
        parse_constraints(DEMAND_CONSTRAINTS),
        nested_offer,
        parse_constraints(OFFER_CONSTRAINTS),
    )
    assert result.matched
    assert result.offer_props["golem.com.pricing.model"] == "linear"


A = "golem.com.payment.platform.erc20-holesky-tglm.address"


@pytest.mark.parametrize(
    ("key", "explanation"),
    [
        (
            "golem.node.debug.subnet",
            "demand constraint (golem.node.debug.subnet=public) is undefined: "
            "offer has no golem.node.debug.subnet",
        ),
        (A, f"demand constraint ({A}=*) is false: offer has no {A}"),
        (
            "golem.com.payment.protocol.version",
            "demand constraint (golem.com.payment.protocol.version>1) is undefined: "
            "offer has no golem.com.payment.protocol.version",
        ),
        (
            "golem.com.pricing.model",
            "demand constraint (golem.com.pricing.model=linear) is undefined: "
            "offer has no golem.com.pricing.model",
        ),
        (
            "golem.inf.mem.gib",
            "demand constraint (golem.inf.mem.gib>=0.5) is undefined: offer has no golem.inf.mem.gib",
        ),
        (
            "golem.inf.storage.gib",
            "demand constraint (golem.inf.storage.gib>=2.0) is undefined: offer has no golem.inf.storage.gib",
        ),
        (
            "golem.inf.cpu.threads",
            "demand constraint (golem.inf.cpu.threads>=1) is undefined: offer has no golem.inf.cpu.threads",
        ),
        (
            "golem.runtime.name",
            "demand constraint (golem.runtime.name=vm) is undefined: offer has no golem.runtime.name",
        ),
    ],
)
def test_each_required_offer_property_removed(key: str, explanation: str) -> None:
    offer = {k: v for k, v in OFFER_PROPS.items() if k != key}
    result = match(DEMAND_PROPS, DEMAND_CONSTRAINTS, offer, OFFER_CONSTRAINTS)
    assert not result.matched
    assert result.offer_side is Tri.TRUE
    assert result.explain() == explanation
    # a null value is the same as no value
    nulled = dict(OFFER_PROPS, **{key: None})
    assert match(DEMAND_PROPS, DEMAND_CONSTRAINTS, nulled, OFFER_CONSTRAINTS).explain() == explanation


@pytest.mark.parametrize(
    ("key", "value", "explanation"),
    [
        (
            "golem.node.debug.subnet",
            "private",
            "demand constraint (golem.node.debug.subnet=public) is false: "
            'offer has golem.node.debug.subnet = "private"',
        ),
        (
            "golem.com.payment.protocol.version",
            1,
            "demand constraint (golem.com.payment.protocol.version>1) is false: "
            "offer has golem.com.payment.protocol.version = 1",
        ),
        (
            "golem.com.pricing.model",
            "fixed",
            "demand constraint (golem.com.pricing.model=linear) is false: "
            'offer has golem.com.pricing.model = "fixed"',
        ),
        (
            "golem.inf.mem.gib",
            0.25,
            "demand constraint (golem.inf.mem.gib>=0.5) is false: offer has golem.inf.mem.gib = 0.25",
        ),
        (
            "golem.inf.storage.gib",
            1,
            "demand constraint (golem.inf.storage.gib>=2.0) is false: offer has golem.inf.storage.gib = 1",
        ),
        (
            "golem.inf.cpu.threads",
            0,
            "demand constraint (golem.inf.cpu.threads>=1) is false: offer has golem.inf.cpu.threads = 0",
        ),
        (
            "golem.runtime.name",
            "wasmtime",
            'demand constraint (golem.runtime.name=vm) is false: offer has golem.runtime.name = "wasmtime"',
        ),
        (
            "golem.inf.mem.gib",
            "0.25",
            'demand constraint (golem.inf.mem.gib>=0.5) is false: offer has golem.inf.mem.gib = "0.25" '
            "(a string, compared as text)",
        ),
        (
            "golem.inf.mem.gib",
            {},
            "demand constraint (golem.inf.mem.gib>=0.5) is undefined: offer has golem.inf.mem.gib = {} "
            "(an object cannot be compared)",
        ),
    ],
)
def test_each_required_offer_property_changed(key: str, value: Any, explanation: str) -> None:
    offer = dict(OFFER_PROPS, **{key: value})
    result = match(DEMAND_PROPS, DEMAND_CONSTRAINTS, offer, OFFER_CONSTRAINTS)
    assert not result.matched
    assert result.explain() == explanation


@pytest.mark.parametrize(
    "key",
    sorted(
        set(OFFER_PROPS)
        - {
            "golem.node.debug.subnet",
            A,
            "golem.com.payment.protocol.version",
            "golem.com.pricing.model",
            "golem.inf.mem.gib",
            "golem.inf.storage.gib",
            "golem.inf.cpu.threads",
            "golem.runtime.name",
        }
    ),
)
def test_properties_the_demand_does_not_mention_do_not_matter(key: str) -> None:
    offer = {k: v for k, v in OFFER_PROPS.items() if k != key}
    assert match(DEMAND_PROPS, DEMAND_CONSTRAINTS, offer, OFFER_CONSTRAINTS).matched


def test_offer_side_failures_are_explained_with_the_demand_values() -> None:
    demand = {k: v for k, v in DEMAND_PROPS.items() if k != "golem.srv.comp.expiration"}
    demand["golem.node.debug.subnet"] = "devnet"
    demand_constraints = DEMAND_CONSTRAINTS.replace("subnet=public", "subnet=devnet")
    offer = dict(OFFER_PROPS, **{"golem.node.debug.subnet": "devnet"})
    result = match(demand, demand_constraints, offer, OFFER_CONSTRAINTS)
    assert (result.demand_side, result.offer_side) == (Tri.TRUE, Tri.FALSE)
    assert result.explain() == (
        "offer constraint (golem.node.debug.subnet=public) is false: "
        'demand has golem.node.debug.subnet = "devnet"'
    )
    # with subnet agreed, the missing expiration is what is left: undefined, not false
    result = match(
        dict(demand, **{"golem.node.debug.subnet": "public"}),
        DEMAND_CONSTRAINTS,
        OFFER_PROPS,
        OFFER_CONSTRAINTS,
    )
    assert result.offer_side is Tri.UNDEFINED
    assert result.explain() == (
        f"offer constraint (golem.srv.comp.expiration>{NOW_MS}) is undefined: "
        f"demand has no golem.srv.comp.expiration"
    )


def test_both_sides_failing_are_both_explained() -> None:
    demand = dict(DEMAND_PROPS, **{"golem.srv.comp.expiration": NOW_MS - 1})
    offer = dict(OFFER_PROPS, **{"golem.runtime.name": "wasmtime", "golem.inf.mem.gib": 0.25})
    assert match(demand, DEMAND_CONSTRAINTS, offer, OFFER_CONSTRAINTS).explain().splitlines() == [
        "demand constraint (golem.inf.mem.gib>=0.5) is false: offer has golem.inf.mem.gib = 0.25",
        'demand constraint (golem.runtime.name=vm) is false: offer has golem.runtime.name = "wasmtime"',
        f"offer constraint (golem.srv.comp.expiration>{NOW_MS}) is false: "
        f"demand has golem.srv.comp.expiration = {NOW_MS - 1}",
    ]


@pytest.mark.parametrize(
    ("constraint", "props", "lines"),
    [
        ("(a=1)", {"a": 1}, []),
        ("(a=1)", {}, ["this constraint (a=1) is undefined: the other side has no a"]),
        (
            "(|(a=1)(b=2))",
            {"a": 3},
            ["this constraint (|(a=1)(b=2)) is undefined: the other side has a = 3, the other side has no b"],
        ),
        (
            "(&(a=1)(!(b=*)))",
            {"a": 1, "b": [1]},
            ["this constraint (!(b=*)) is false: the other side has b = [1]"],
        ),
        ("(|)", {}, ["this constraint (|) is false: it can never hold"]),
        (
            "(a[x]=1)",
            {"a": 1},
            [
                "this constraint (a[x]=1) is undefined: "
                "the other side has no a[x] (properties carry no aspects)"
            ],
        ),
        (
            "(a>=abc)",
            {"a": 3},
            [
                "this constraint (a>=abc) is false: "
                "the other side has a = 3 (the constraint value is not a number)"
            ],
        ),
        (
            "(a=maybe)",
            {"a": True},
            [
                "this constraint (a=maybe) is false: "
                "the other side has a = true (the constraint value is not a boolean)"
            ],
        ),
        (
            "(a>true)",
            {"a": True},
            ["this constraint (a>true) is false: the other side has a = true (booleans are not ordered)"],
        ),
        (
            "(a>x)",
            {"a": ["y"]},
            ['this constraint (a>x) is false: the other side has a = ["y"] (lists are not ordered)'],
        ),
        (
            "(a=x)",
            {"a": ["y"]},
            ['this constraint (a=x) is false: the other side has a = ["y"] (not an element)'],
        ),
        (
            "(a=[x])",
            {"a": ["y"]},
            ['this constraint (a=[x]) is false: the other side has a = ["y"] (not the same set)'],
        ),
        (
            "(a$v>1.0)",
            {"a": "2.0.0"},
            [
                "this constraint (a$v>1.0) is undefined: "
                'the other side has a = "2.0.0" (the constraint value is not a semantic version)'
            ],
        ),
        (
            "(a$v>1.0.0)",
            {"a": "2.0"},
            [
                "this constraint (a$v>1.0.0) is undefined: "
                'the other side has a = "2.0" (not a semantic version)'
            ],
        ),
        (
            "(a$d>1.0)",
            {"a": 2},
            [
                "this constraint (a$d>1.0) is undefined: "
                "the other side has a = 2 (only a string can be read as a decimal)"
            ],
        ),
        (
            "(a$t>2024-01-01T00:00:00Z)",
            {"a": "2023-01-01T00:00:00Z"},
            [
                "this constraint (a$t>2024-01-01T00:00:00Z) is false: "
                'the other side has a = "2023-01-01T00:00:00Z"'
            ],
        ),
    ],
)
def test_explain_one_direction(constraint: str, props: dict[str, Any], lines: list[str]) -> None:
    assert explain(constraint, props) == lines


def test_explain_truncates_long_values() -> None:
    [line] = explain("(a=x)", {"a": "y" * 500}, constraint_side="demand", props_side="offer")
    assert line.startswith('demand constraint (a=x) is false: offer has a = "yyy')
    assert line.endswith("…") and len(line) < 200


def test_unparseable_constraints_raise() -> None:
    with pytest.raises(ConstraintSyntaxError):
        match(DEMAND_PROPS, "(a~=1)", OFFER_PROPS, OFFER_CONSTRAINTS)
