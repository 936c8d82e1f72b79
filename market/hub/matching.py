"""An index of live offers and demands, so a new subscription is not matched by scanning everything.

The market node must tell, whenever a demand (or offer) arrives, which live offers (demands) match it
in both directions. The answer must be exactly what evaluating :func:`market.props.match` on every
pair would give; the index only decides which pairs are worth evaluating, and which halves of the
evaluation it has already done.

Two structures per side:

* a **property index** (:class:`_PropIndex`) over the entries' flat properties. Per key: the string
  values in sorted buckets, the numbers likewise, the booleans, and the elements of list values.
  The newcomer's constraint is reduced to what must hold for it to be TRUE (the leaves of its
  top-level conjunction, and disjunctions of such) and each leaf becomes a candidate set: equality
  a bucket look-up, ``>=``/``<`` a bisected range, presence the entries having the key. When every
  leaf is one the index answers exactly (the usual case: yapapi's demand is all equalities,
  presence tests and numeric bounds), the intersection *is* the answer for that direction and no
  entry is evaluated for it. Keys are indexed lazily, the first time a query mentions them, so the
  dozens of properties no constraint ever reads (prices, names, coefficients) cost nothing.
* an **anchor index** (:class:`_AnchorIndex`) over the entries' *constraints*: an entry whose
  constraint requires some ``key=value`` is filed under one such equality (the one fewest entries of
  the other side satisfy when it is added). A newcomer meets only the entries whose anchor its
  properties satisfy, plus those without an anchor; for the former only the rest of the constraint
  (the *residual*) is still evaluated.

Both only ever over-approximate, and "exact" is claimed only where the index's answer coincides
with the evaluator's by construction, which is what keeps the result identical to brute force.
"""

from __future__ import annotations

import bisect
import functools
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from market.core.errors import GolemError
from market.props import Constraint, Tri
from market.props.evaluate import Evaluator, compile_node, set_literal_items
from market.props.nodes import And, Compare, Node, Not, Op, Or, Present
from market.props.values import as_f64, parse_bool, parse_f64

__all__ = ["STANDARD_KEYS", "DuplicateEntryError", "MatchIndex"]

STANDARD_KEYS = (
    "golem.node.debug.subnet",
    "golem.runtime.name",
    "golem.com.pricing.model",
    "golem.com.payment.protocol.version",
    "golem.inf.mem.gib",
    "golem.inf.storage.gib",
    "golem.inf.cpu.threads",
    "golem.srv.comp.expiration",
)
"""Keys that yapapi demands and ya-provider offers constrain (spec §4.4, §4.5): indexed up front."""

_TRUE = Tri.TRUE
_Seqs: TypeAlias = set[int] | frozenset[int]
_EMPTY: frozenset[int] = frozenset()
_SUM_LIMIT = 32  # distinct values summed exactly when sizing a range; beyond, interpolate


class DuplicateEntryError(GolemError):
    """An offer or demand id was added while an entry with that id is still live."""


# --- property values as the index sees them ----------------------------------------------------


def _scalar_kind(value: Any) -> tuple[str, Any]:
    """("s", str) / ("n", float) / ("b", bool), or ("x", None) for what no comparison makes TRUE.

    Mirrors the evaluator's type dispatch, including for subclasses of the JSON types. Objects,
    NaN, nested lists and nulls inside lists can never satisfy a plain comparison.
    """
    t = type(value)
    if t is str:
        return "s", value
    if t is bool:
        return "b", value
    if t is int or t is float:
        number = as_f64(value)
        return ("x", None) if number != number else ("n", number)
    if isinstance(value, bool):
        return "b", bool(value)
    if isinstance(value, str):
        return "s", str(value)
    if isinstance(value, int | float):
        number = as_f64(value)
        return ("x", None) if math.isnan(number) else ("n", number)
    return "x", None


def _is_list(value: Any) -> bool:
    return isinstance(value, list | tuple)


class _Sorted:
    """The distinct values of one type under one key, in order, each with the entries holding it."""

    __slots__ = ("buckets", "keys", "total")

    def __init__(self) -> None:
        self.keys: list[Any] = []
        self.buckets: dict[Any, set[int]] = {}
        self.total = 0

    def add(self, value: Any, seq: int) -> None:
        bucket = self.buckets.get(value)
        if bucket is None:
            self.buckets[value] = {seq}
            bisect.insort(self.keys, value)
        else:
            bucket.add(seq)
        self.total += 1

    def discard(self, value: Any, seq: int) -> None:
        bucket = self.buckets.get(value)
        if bucket is None or seq not in bucket:
            return
        bucket.discard(seq)
        self.total -= 1
        if not bucket:
            del self.buckets[value]
            del self.keys[bisect.bisect_left(self.keys, value)]

    def span(self, op: Op, bound: Any) -> tuple[int, int]:
        keys = self.keys
        if op is Op.GE:
            return bisect.bisect_left(keys, bound), len(keys)
        if op is Op.GT:
            return bisect.bisect_right(keys, bound), len(keys)
        if op is Op.LE:
            return 0, bisect.bisect_right(keys, bound)
        return 0, bisect.bisect_left(keys, bound)

    def span_between(self, low: Any, high: Any | None) -> tuple[int, int]:
        lo = bisect.bisect_left(self.keys, low)
        hi = len(self.keys) if high is None else bisect.bisect_left(self.keys, high)
        return lo, max(lo, hi)

    def size(self, span: tuple[int, int]) -> int:
        lo, hi = span
        if hi - lo <= _SUM_LIMIT:
            return sum(len(self.buckets[k]) for k in self.keys[lo:hi])
        return self.total * (hi - lo) // len(self.keys)  # a planning estimate, not a count

    def sets(self, span: tuple[int, int]) -> list[set[int]]:
        lo, hi = span
        return [self.buckets[k] for k in self.keys[lo:hi]]


class _KeyIndex:
    """Everything the index knows about one property key across one side's entries."""

    __slots__ = ("bools", "elements", "lists", "nums", "present", "strs")

    def __init__(self) -> None:
        self.present: set[int] = set()
        self.strs = _Sorted()
        self.nums = _Sorted()
        self.bools: dict[bool, set[int]] = {}
        self.elements: dict[tuple[str, Any], set[int]] = {}  # list elements by (kind, value)
        self.lists: set[int] = set()  # entries whose value is a list

    def add(self, seq: int, value: Any) -> None:
        self.present.add(seq)
        if _is_list(value):
            self.lists.add(seq)
            for element in value:
                kind, scalar = _scalar_kind(element)
                if kind != "x":
                    self.elements.setdefault((kind, scalar), set()).add(seq)
            return
        kind, scalar = _scalar_kind(value)
        if kind == "s":
            self.strs.add(scalar, seq)
        elif kind == "n":
            self.nums.add(scalar, seq)
        elif kind == "b":
            self.bools.setdefault(scalar, set()).add(seq)

    def remove(self, seq: int, value: Any) -> None:
        self.present.discard(seq)
        if _is_list(value):
            self.lists.discard(seq)
            for element in value:
                kind, scalar = _scalar_kind(element)
                if kind != "x":
                    _discard(self.elements, (kind, scalar), seq)
            return
        kind, scalar = _scalar_kind(value)
        if kind == "s":
            self.strs.discard(scalar, seq)
        elif kind == "n":
            self.nums.discard(scalar, seq)
        elif kind == "b":
            _discard(self.bools, scalar, seq)


def _discard(index: dict[Any, set[int]], key: Any, seq: int) -> None:
    bucket = index.get(key)
    if bucket is not None:
        bucket.discard(seq)
        if not bucket:
            del index[key]


# --- what a constraint requires, in index terms --------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Never:
    """The constraint can never be TRUE (it compares an aspect, or is an empty ``(|)``...)."""


@dataclass(frozen=True, slots=True)
class _Has:
    key: str
    test: Evaluator = field(compare=False)
    """The leaf this stands for, compiled: TRUE only on entries in this condition's set."""


@dataclass(frozen=True, slots=True)
class _Equal:
    key: str
    text: str
    number: float | None
    flag: bool | None
    test: Evaluator = field(compare=False)


@dataclass(frozen=True, slots=True)
class _Range:
    key: str
    op: Op
    text: str
    number: float | None
    test: Evaluator = field(compare=False)


@dataclass(frozen=True, slots=True)
class _Prefix:
    key: str
    low: str
    high: str | None
    test: Evaluator = field(compare=False)


@dataclass(frozen=True, slots=True)
class _AllOf:
    parts: tuple[_Req, ...]


@dataclass(frozen=True, slots=True)
class _AnyOf:
    parts: tuple[_Req, ...]


_Req: TypeAlias = _Never | _Has | _Equal | _Range | _Prefix | _AllOf | _AnyOf | None
"""A necessary condition for TRUE; None means "nothing usable", i.e. any entry may satisfy it."""


@dataclass(frozen=True, slots=True)
class _Requirement:
    req: _Req
    exact: bool
    """Whether ``req`` is also sufficient, i.e. equivalent to "the constraint is TRUE"."""


def _number(text: str) -> float | None:
    number = parse_f64(text)
    return None if number is None or math.isnan(number) else number


def _prefix_upper(prefix: str) -> str | None:
    """The least string greater than every string starting with ``prefix`` (None: no bound)."""
    while prefix and ord(prefix[-1]) == 0x10FFFF:
        prefix = prefix[:-1]
    return prefix[:-1] + chr(ord(prefix[-1]) + 1) if prefix else None


@functools.lru_cache(maxsize=8192)
def _equal(key: str, text: str) -> _Equal:
    return _Equal(key, text, _number(text), parse_bool(text), compile_node(Compare(key, Op.EQ, text)))


def _requirement(node: Node) -> _Requirement:
    if isinstance(node, Present):
        if node.aspect is not None:
            return _Requirement(_Never(), True)  # always false
        return _Requirement(_Has(node.name, compile_node(node)), True)
    if isinstance(node, Compare):
        if node.aspect is not None:
            return _Requirement(_Never(), True)  # always undefined
        test = compile_node(node)
        if node.value_type is not None:
            return _Requirement(_Has(node.name, test), False)
        if node.op is not Op.EQ:
            return _Requirement(_Range(node.name, node.op, node.value, _number(node.value), test), True)
        if set_literal_items(node.value) is not None:
            return _Requirement(_Has(node.name, test), False)
        if "*" in node.value:
            prefix = node.value.split("*", 1)[0]
            if not prefix:
                return _Requirement(_Has(node.name, test), False)
            prefix_req = _Prefix(node.name, prefix, _prefix_upper(prefix), test)
            return _Requirement(prefix_req, node.value == prefix + "*")
        return _Requirement(_equal(node.name, node.value), True)
    if isinstance(node, And):
        children = [_requirement(c) for c in node.children]
        if any(isinstance(c.req, _Never) for c in children):
            return _Requirement(_Never(), True)
        exact = all(c.exact for c in children)
        parts: list[_Req] = []
        for c in children:
            # Nested conjunctions (yapapi's vm group) join ours, so the cheapest leaf of all leads.
            if isinstance(c.req, _AllOf):
                parts += c.req.parts
            elif c.req is not None:
                parts.append(c.req)
        if not parts:
            return _Requirement(None, exact)
        return _Requirement(parts[0] if len(parts) == 1 else _AllOf(tuple(parts)), exact)
    if isinstance(node, Or):
        children = [_requirement(c) for c in node.children]
        if any(c.req is None for c in children):
            # An always-TRUE alternative makes the whole disjunction always TRUE.
            return _Requirement(None, any(c.req is None and c.exact for c in children))
        exact = all(c.exact for c in children)
        live = [c.req for c in children if not isinstance(c.req, _Never)]
        if not live:
            return _Requirement(_Never(), exact)
        return _Requirement(live[0] if len(live) == 1 else _AnyOf(tuple(live)), exact)
    assert isinstance(node, Not)
    return _Requirement(None, False)


@functools.lru_cache(maxsize=8192)
def _requirement_of(constraint: Constraint) -> _Requirement:
    return _requirement(constraint.root)


# --- candidate plans ----------------------------------------------------------------------------


class _Plan:
    """A candidate set known by its (estimated) size before anyone pays for building it.

    ``exact`` plans hold exactly the entries that satisfy their requirement. ``materialize`` may
    return one of the index's own sets: callers treat results as read-only. A leaf's plan also has
    its compiled ``test``, which can filter a small candidate set instead of building a big one.
    """

    __slots__ = ("_build", "_sets", "exact", "size", "test")

    def __init__(
        self,
        size: int,
        exact: bool,
        sets: list[_Seqs] | None = None,
        build: Callable[[], _Seqs] | None = None,
        test: Evaluator | None = None,
    ) -> None:
        self.size = size
        self.exact = exact
        self._sets = sets
        self._build = build
        self.test = test

    @property
    def direct(self) -> bool:
        """Whether materializing costs nothing (an existing set, or none)."""
        return self._sets is not None and len(self._sets) <= 1

    def materialize(self) -> _Seqs:
        if self._sets is not None:
            if not self._sets:
                return _EMPTY
            if len(self._sets) == 1:
                return self._sets[0]
            return set().union(*self._sets)
        assert self._build is not None
        return self._build()


def _union_plan(sets: Iterable[_Seqs | None], test: Evaluator) -> _Plan:
    nonempty: list[_Seqs] = [s for s in sets if s]
    return _Plan(sum(len(s) for s in nonempty), True, sets=nonempty, test=test)


def _intersection_plan(plans: list[_Plan], complete: bool, entries: dict[int, _Entry]) -> _Plan:
    ordered = sorted(plans, key=lambda p: p.size)
    exact = complete and all(p.exact for p in plans)

    def build() -> _Seqs:
        current = ordered[0].materialize()
        for plan in ordered[1:]:
            if not current:
                break
            test = plan.test
            if plan.direct:
                current = current & plan.materialize()
            elif test is not None and plan.size > 8 * len(current):
                # Few candidates, a big set: asking each candidate is cheaper than building it.
                current = {s for s in current if test(entries[s].props) is _TRUE}
            elif exact or plan.size <= 16 * len(current):
                # Finishing the intersection makes an exact answer final, which is worth a lot: a
                # set operation costs a few percent of an evaluation per entry. Otherwise build
                # only what is cheap relative to what it can remove; verification does the rest.
                current = current & plan.materialize()
        return current

    return _Plan(ordered[0].size, exact, build=build)


def _alternatives_plan(plans: list[_Plan]) -> _Plan:
    def build() -> _Seqs:
        out: set[int] = set()
        for plan in plans:
            out |= plan.materialize()
        return out

    return _Plan(sum(p.size for p in plans), all(p.exact for p in plans), build=build)


class _PropIndex:
    """Per-key value indexes over one side's flat properties, built for a key on first use."""

    def __init__(self, entries: dict[int, _Entry]) -> None:
        self._entries = entries
        self._keys: dict[str, _KeyIndex] = {}

    def key(self, key: str) -> _KeyIndex:
        index = self._keys.get(key)
        if index is None:
            index = self._keys[key] = _KeyIndex()
            for seq, entry in self._entries.items():
                value = entry.props.get(key)
                if value is not None:
                    index.add(seq, value)
        return index

    def _indexed(self, props: Mapping[str, Any]) -> Iterable[tuple[_KeyIndex, Any]]:
        keys = self._keys
        if len(keys) < len(props):
            for key, index in keys.items():
                value = props.get(key)
                if value is not None:
                    yield index, value
        else:
            for key, value in props.items():
                if value is not None and key in keys:
                    yield keys[key], value

    def add(self, seq: int, props: Mapping[str, Any]) -> None:
        for index, value in self._indexed(props):
            index.add(seq, value)

    def remove(self, seq: int, props: Mapping[str, Any]) -> None:
        for index, value in self._indexed(props):
            index.remove(seq, value)

    def plan(self, req: _Req, complete: bool = True) -> _Plan | None:
        """Candidates for entries whose properties may satisfy ``req``; None: every entry may.

        ``complete`` asks for an exact answer where the index can give one; without it, parts of a
        conjunction that are expensive to build are left to verification.
        """
        if req is None:
            return None
        if isinstance(req, _Never):
            return _Plan(0, True, sets=[])
        if isinstance(req, _AllOf | _AnyOf):
            subplans = [self.plan(part, complete) for part in req.parts]
            if isinstance(req, _AllOf):
                known = [p for p in subplans if p is not None]
                return _intersection_plan(known, complete, self._entries) if known else None
            if any(p is None for p in subplans):
                return None
            return _alternatives_plan([p for p in subplans if p is not None])
        index = self.key(req.key)
        if isinstance(req, _Has):
            return _union_plan([index.present], req.test)
        if isinstance(req, _Equal):
            # Exact: a string equals the text, a number the text read as f64, a boolean the text
            # read as a boolean, and a list contains an element doing one of those.
            sets: list[_Seqs | None] = [
                index.strs.buckets.get(req.text),
                index.elements.get(("s", req.text)),
            ]
            if req.number is not None:
                sets += [index.nums.buckets.get(req.number), index.elements.get(("n", req.number))]
            if req.flag is not None:
                sets += [index.bools.get(req.flag), index.elements.get(("b", req.flag))]
            return _union_plan(sets, req.test)
        if isinstance(req, _Prefix):
            strs = index.strs
            span = strs.span_between(req.low, req.high)
            low = req.low
            elements = [s for (kind, v), s in index.elements.items() if kind == "s" and v.startswith(low)]
            size = strs.size(span) + sum(len(s) for s in elements)
            return _Plan(size, True, build=lambda: set().union(*strs.sets(span), *elements), test=req.test)
        # A range: a string compares with the text lexicographically, a number with the text read
        # as f64; lists and booleans are never ordered.
        str_span = index.strs.span(req.op, req.text)
        num_span = index.nums.span(req.op, req.number) if req.number is not None else (0, 0)
        size = index.strs.size(str_span) + index.nums.size(num_span)
        strs, nums = index.strs, index.nums
        return _Plan(
            size, True, build=lambda: set().union(*strs.sets(str_span), *nums.sets(num_span)), test=req.test
        )


# --- anchors: entries filed by one equality their constraint requires ----------------------------


class _AnchorIndex:
    def __init__(self) -> None:
        self.by_text: dict[str, dict[str, set[int]]] = {}
        self.by_number: dict[str, dict[float, set[int]]] = {}
        self.on_key: dict[str, set[int]] = {}
        self.free: set[int] = set()

    def bucket_size(self, key: str, text: str) -> int:
        return len(self.by_text.get(key, {}).get(text, _EMPTY))

    def add(self, seq: int, anchor: tuple[str, str] | None) -> None:
        if anchor is None:
            self.free.add(seq)
            return
        key, text = anchor
        self.by_text.setdefault(key, {}).setdefault(text, set()).add(seq)
        self.on_key.setdefault(key, set()).add(seq)
        number = _number(text)
        if number is not None:
            self.by_number.setdefault(key, {}).setdefault(number, set()).add(seq)

    def remove(self, seq: int, anchor: tuple[str, str] | None) -> None:
        if anchor is None:
            self.free.discard(seq)
            return
        key, text = anchor
        for index, sub in ((self.by_text, text), (self.by_number, _number(text))):
            by_value = index.get(key)
            if by_value is not None and sub is not None:
                _discard(by_value, sub, seq)
                if not by_value:
                    del index[key]
        _discard(self.on_key, key, seq)

    def candidates(self, props: Mapping[str, Any]) -> tuple[set[int], set[int]]:
        """``(sure, maybe)``: entries whose anchor equality ``props`` certainly satisfies, and the
        rest that may still match (unanchored ones, and anchors on a value type not looked up)."""
        sure: set[int] = set()
        maybe = set(self.free)
        for key, by_text in self.by_text.items():
            value = props.get(key)
            if value is None:
                continue  # the anchored comparison is undefined: none of these can match
            for element in value if _is_list(value) else (value,):
                kind, scalar = _scalar_kind(element)
                if kind == "s":
                    bucket = by_text.get(scalar)
                elif kind == "n":
                    bucket = self.by_number.get(key, {}).get(scalar)
                elif kind == "b":
                    maybe |= self.on_key[key]  # rare: not worth a third sub-index
                    continue
                else:
                    continue
                if bucket:
                    sure |= bucket
        return sure, maybe


def _without(node: Node, leaf: Compare) -> Node:
    """``node`` with ``leaf`` taken as TRUE along its conjunction path, simplified.

    Sound because TRUE is the identity of And and absorbs Or in Kleene's logic.
    """
    if node == leaf:
        return And(())
    if isinstance(node, And):
        kept = tuple(c for c in (_without(c, leaf) for c in node.children) if c != And(()))
        return kept[0] if len(kept) == 1 else And(kept)
    if isinstance(node, Or) and len(node.children) == 1:
        return _without(node.children[0], leaf)
    return node


@functools.lru_cache(maxsize=8192)
def _residual(constraint: Constraint, anchor: tuple[str, str]) -> Evaluator:
    # Cached, so entries with equal constraints and anchors share one evaluator, which a query
    # then evaluates once for all of them.
    return compile_node(_without(constraint.root, Compare(anchor[0], Op.EQ, anchor[1])))


@functools.lru_cache(maxsize=8192)
def _required_equalities(constraint: Constraint) -> tuple[tuple[str, str], ...]:
    return constraint.required_equalities()


# --- the index ----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Entry:
    id: str
    owner: str
    props: dict[str, Any]
    constraint: Constraint
    evaluate: Evaluator
    anchor: tuple[str, str] | None
    residual: Evaluator
    """The constraint minus its anchor equality: enough once the anchor is known TRUE."""


class _Side:
    """One side of the market (offers or demands): entries in insertion order, plus both indexes."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.entries: dict[int, _Entry] = {}
        self.seq_of: dict[str, int] = {}
        self.props = _PropIndex(self.entries)
        self.anchors = _AnchorIndex()
        self.next_seq = 0

    def add(self, entry: _Entry) -> None:
        if entry.id in self.seq_of:
            raise DuplicateEntryError(f"{self.kind} {entry.id!r} is already in the index")
        seq = self.next_seq
        self.next_seq += 1
        self.entries[seq] = entry
        self.seq_of[entry.id] = seq
        self.props.add(seq, entry.props)
        self.anchors.add(seq, entry.anchor)

    def remove(self, entry_id: str) -> None:
        seq = self.seq_of.pop(entry_id, None)
        if seq is None:
            return
        entry = self.entries.pop(seq)
        self.props.remove(seq, entry.props)
        self.anchors.remove(seq, entry.anchor)

    def ordered(self, seqs: _Seqs | None) -> Iterable[tuple[int, _Entry]]:
        """``(seq, entry)`` of ``seqs`` (None: all) in insertion order."""
        entries = self.entries
        if seqs is None:
            return entries.items()
        if len(seqs) * 8 > len(entries):
            return [(s, e) for s, e in entries.items() if s in seqs]
        return [(s, entries[s]) for s in sorted(seqs)]

    def satisfying(self, constraint: Constraint) -> tuple[_Seqs | None, bool]:
        """Entries whose properties may make ``constraint`` TRUE (None: possibly all), and whether
        they are exactly those that do."""
        requirement = _requirement_of(constraint)
        plan = self.props.plan(requirement.req, complete=requirement.exact)
        if plan is None:
            return None, requirement.exact
        return plan.materialize(), requirement.exact and plan.exact


class MatchIndex:
    """Live offers and demands of the market, indexed for two-way matching.

    Properties handed in must already be flat (:func:`market.props.flatten`). Results are lists of
    ids in insertion order and equal, always, what :func:`market.props.match` over every live entry
    would give; entries of the same owner (node identity) never match each other, as in yagna.
    Adding an id that is live raises :class:`DuplicateEntryError`; removing an unknown id is a
    no-op, because unsubscribe and expiry may race. Not thread-safe: one event loop owns it.
    """

    def __init__(self, indexed_keys: Iterable[str] = STANDARD_KEYS) -> None:
        """``indexed_keys`` are indexed from the start; any other key the first time a query
        mentions it, which costs one pass over the live entries then."""
        self._offers = _Side("offer")
        self._demands = _Side("demand")
        for key in indexed_keys:
            self._offers.props.key(key)
            self._demands.props.key(key)

    @property
    def offer_count(self) -> int:
        """Number of live offers."""
        return len(self._offers.entries)

    @property
    def demand_count(self) -> int:
        """Number of live demands."""
        return len(self._demands.entries)

    def add_offer(self, offer_id: str, owner: str, props: Mapping[str, Any], constraint: Constraint) -> None:
        """Make an offer visible to :meth:`match_demand` and :meth:`offers_satisfying`."""
        self._offers.add(_entry(offer_id, owner, props, constraint, self._demands, self._offers))

    def remove_offer(self, offer_id: str) -> None:
        """Forget an offer (unsubscribed or expired)."""
        self._offers.remove(offer_id)

    def add_demand(
        self, demand_id: str, owner: str, props: Mapping[str, Any], constraint: Constraint
    ) -> None:
        """Make a demand visible to :meth:`match_offer` and :meth:`demands_satisfying`."""
        self._demands.add(_entry(demand_id, owner, props, constraint, self._offers, self._demands))

    def remove_demand(self, demand_id: str) -> None:
        """Forget a demand (unsubscribed or expired)."""
        self._demands.remove(demand_id)

    def match_demand(self, owner: str, props: Mapping[str, Any], constraint: Constraint) -> list[str]:
        """Ids of live offers matching a new demand both ways, other owners only."""
        return _match(self._offers, owner, props, constraint)

    def match_offer(self, owner: str, props: Mapping[str, Any], constraint: Constraint) -> list[str]:
        """Ids of live demands matching a new offer both ways, other owners only."""
        return _match(self._demands, owner, props, constraint)

    def offers_satisfying(self, constraint: Constraint) -> list[str]:
        """Ids of live offers whose properties make ``constraint`` TRUE (one direction, any owner).

        For the REST "filter offers" endpoint, where no demand properties exist to check back.
        """
        return _satisfying(self._offers, constraint)

    def demands_satisfying(self, constraint: Constraint) -> list[str]:
        """Ids of live demands whose properties make ``constraint`` TRUE (one direction, any owner)."""
        return _satisfying(self._demands, constraint)


def _entry(
    entry_id: str, owner: str, props: Mapping[str, Any], constraint: Constraint, other: _Side, own: _Side
) -> _Entry:
    anchor = _choose_anchor(constraint, other, own)
    return _Entry(
        id=entry_id,
        owner=owner,
        props=dict(props),  # our own copy: the index must not change under a caller's mutation
        constraint=constraint,
        evaluate=constraint.evaluator,
        anchor=anchor,
        residual=constraint.evaluator if anchor is None else _residual(constraint, anchor),
    )


def _choose_anchor(constraint: Constraint, other: _Side, own: _Side) -> tuple[str, str] | None:
    """The required equality that the fewest entries of the other side currently satisfy.

    That count estimates how often a newcomer on the other side will meet this entry as a candidate.
    Ties go to the emptier anchor bucket on our own side, then to the constraint's own order.
    """
    best: tuple[int, int, int] | None = None
    chosen = None
    for position, (key, text) in enumerate(_required_equalities(constraint)):
        plan = other.props.plan(_equal(key, text))
        assert plan is not None
        rank = (plan.size, own.anchors.bucket_size(key, text), position)
        if best is None or rank < best:
            best, chosen = rank, (key, text)
    return chosen


def _satisfying(side: _Side, constraint: Constraint) -> list[str]:
    candidates, exact = side.satisfying(constraint)
    if exact:
        return [e.id for _, e in side.ordered(candidates)]
    evaluate = constraint.evaluator
    return [e.id for _, e in side.ordered(candidates) if evaluate(e.props) is _TRUE]


def _match(side: _Side, owner: str, props: Mapping[str, Any], constraint: Constraint) -> list[str]:
    by_props, exact = side.satisfying(constraint)
    sure, maybe = side.anchors.candidates(props)
    by_anchor = sure | maybe if maybe else sure
    candidates = by_anchor if by_props is None else by_props & by_anchor
    evaluate = constraint.evaluator
    # Entries sharing a constraint (identical text is parsed once) or a residual share one evaluator,
    # so its verdict on the newcomer's properties is computed once per call.
    verdicts: dict[Evaluator, Tri] = {}
    out: list[str] = []
    entries = side.entries
    walk: Iterable[tuple[int, _Entry]]
    if len(candidates) == len(entries):  # candidates are live entries, so: all of them
        walk = entries.items()
    elif len(candidates) * 8 > len(entries):
        walk = [(seq, entry) for seq, entry in entries.items() if seq in candidates]
    else:
        walk = [(seq, entries[seq]) for seq in sorted(candidates)]
    for seq, entry in walk:
        if entry.owner == owner:
            continue
        check = entry.residual if seq in sure else entry.evaluate
        verdict = verdicts.get(check)
        if verdict is None:
            verdict = verdicts[check] = check(props)
        if verdict is _TRUE and (exact or evaluate(entry.props) is _TRUE):
            out.append(entry.id)
    return out
