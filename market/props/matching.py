"""Two-way matching of a demand and an offer (spec §4.1), and why a pair does not match.

The verdict is what yagna's resolver computes; the explanation exists for humans: a requestor whose
demand finds no offers, or a provider wondering why nobody buys, needs to see which clause failed
and what the other side actually advertised.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from market.props.constraint import Constraint, parse_constraints
from market.props.evaluate import Tri, compile_node, set_literal_items, typed_parser
from market.props.nodes import And, Compare, Node, Not, Op, Or, Present, ValueType, to_text
from market.props.properties import flatten
from market.props.values import parse_bool, parse_f64

__all__ = ["MatchResult", "explain", "match"]


@dataclass(frozen=True)
class MatchResult:
    """The outcome of :func:`match`; only TRUE on both sides is a match."""

    demand_side: Tri
    """The demand's constraint evaluated on the offer's properties."""
    offer_side: Tri
    """The offer's constraint evaluated on the demand's properties."""
    demand_constraint: Constraint = field(repr=False)
    offer_constraint: Constraint = field(repr=False)
    demand_props: Mapping[str, Any] = field(repr=False)
    offer_props: Mapping[str, Any] = field(repr=False)

    @property
    def matched(self) -> bool:
        """Whether the pair matches."""
        return self.demand_side is Tri.TRUE and self.offer_side is Tri.TRUE

    def explain(self) -> str:
        """One line per failing clause, naming whose constraint it is and what the other side has."""
        lines: list[str] = []
        if self.demand_side is not Tri.TRUE:
            lines += explain(
                self.demand_constraint, self.offer_props, constraint_side="demand", props_side="offer"
            )
        if self.offer_side is not Tri.TRUE:
            lines += explain(
                self.offer_constraint, self.demand_props, constraint_side="offer", props_side="demand"
            )
        return "\n".join(lines) if lines else "demand and offer match"


def _as_constraint(constraint: Constraint | str) -> Constraint:
    return constraint if isinstance(constraint, Constraint) else parse_constraints(constraint)


def match(
    demand_props: Mapping[str, Any],
    demand_constraints: Constraint | str,
    offer_props: Mapping[str, Any],
    offer_constraints: Constraint | str,
) -> MatchResult:
    """Evaluate both directions of a demand/offer pair.

    Properties may be flat or nested; constraints may be text or parsed. Unparseable text raises
    :class:`~market.props.errors.ConstraintSyntaxError`: the caller decides whether that means "no
    match" (yagna's behaviour for stored subscriptions) or a 400 (a request being validated).
    """
    demand = _as_constraint(demand_constraints)
    offer = _as_constraint(offer_constraints)
    demand_flat = flatten(demand_props)
    offer_flat = flatten(offer_props)
    return MatchResult(
        demand_side=demand.evaluate(offer_flat),
        offer_side=offer.evaluate(demand_flat),
        demand_constraint=demand,
        offer_constraint=offer,
        demand_props=demand_flat,
        offer_props=offer_flat,
    )


def explain(
    constraint: Constraint | str,
    props: Mapping[str, Any],
    *,
    constraint_side: str = "this",
    props_side: str = "the other side",
) -> list[str]:
    """Why ``constraint`` is not TRUE on FLAT ``props``; empty when it is TRUE.

    Descends through conjunctions to the clauses responsible (the false ones, or if none is false the
    undefined ones) and prints each in constraint syntax with the values it read, e.g.
    ``demand constraint (golem.inf.mem.gib>=8) is false: offer has golem.inf.mem.gib = 4``.
    """
    parsed = _as_constraint(constraint)
    result = parsed.evaluate(props)
    if result is Tri.TRUE:
        return []
    lines = []
    for node in _culprits(parsed.root, props, result):
        facts = _facts(node, props, props_side) or ["it can never hold"]
        lines.append(f"{constraint_side} constraint {to_text(node)} is {result.value}: {', '.join(facts)}")
    return lines


def _culprits(node: Node, props: Mapping[str, Any], result: Tri) -> list[Node]:
    if isinstance(node, And) and node.children:
        # A false conjunction has false children; an undefined one has undefined children only.
        out: list[Node] = []
        for child in node.children:
            if compile_node(child)(props) is result:
                out += _culprits(child, props, result)
        return out
    if isinstance(node, Or) and len(node.children) == 1:
        return _culprits(node.children[0], props, result)
    return [node]


def _leaves(node: Node) -> list[Compare | Present]:
    if isinstance(node, Compare | Present):
        return [node]
    if isinstance(node, Not):
        return _leaves(node.child)
    return [leaf for child in node.children for leaf in _leaves(child)]


def _facts(node: Node, props: Mapping[str, Any], side: str) -> list[str]:
    leaves = _leaves(node)
    facts: dict[str, None] = {}
    for leaf in leaves:
        if leaf.aspect is not None:
            facts[f"{side} has no {leaf.name}[{leaf.aspect}] (properties carry no aspects)"] = None
            continue
        value = props.get(leaf.name)
        if value is None:
            facts[f"{side} has no {leaf.name}"] = None
            continue
        note = _note(leaf, value) if len(leaves) == 1 else ""
        facts[f"{side} has {leaf.name} = {_show(value)}{note}"] = None
    return list(facts)


_TYPE_NAMES = {
    ValueType.VERSION: "a semantic version",
    ValueType.DECIMAL: "a decimal",
    ValueType.DATETIME: "an RFC 3339 datetime",
}


def _note(leaf: Compare | Present, value: Any) -> str:
    """A hint for the non-obvious reasons a single comparison fails on a present value."""
    if not isinstance(leaf, Compare):
        return ""
    if leaf.value_type is not None:
        what = _TYPE_NAMES[leaf.value_type]
        parse = typed_parser(leaf.value_type)
        if parse(leaf.value) is None:
            return f" (the constraint value is not {what})"
        if not isinstance(value, str):
            return f" (only a string can be read as {what})"
        if parse(value) is None:
            return f" (not {what})"
        return ""
    if isinstance(value, Mapping):
        return " (an object cannot be compared)"
    if isinstance(value, str):
        # A number sent as a JSON string compares as text: "10" < "9". Easy to miss, so say it.
        return " (a string, compared as text)" if parse_f64(leaf.value) is not None else ""
    if isinstance(value, bool):
        if leaf.op is not Op.EQ:
            return " (booleans are not ordered)"
        return "" if parse_bool(leaf.value) is not None else " (the constraint value is not a boolean)"
    if isinstance(value, int | float):
        return "" if parse_f64(leaf.value) is not None else " (the constraint value is not a number)"
    if isinstance(value, list | tuple):
        if leaf.op is not Op.EQ:
            return " (lists are not ordered)"
        return " (not the same set)" if set_literal_items(leaf.value) is not None else " (not an element)"
    return ""


def _show(value: Any, limit: int = 120) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
