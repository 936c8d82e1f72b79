"""Three-valued evaluation of constraint trees against flat properties.

A tree is compiled once into nested closures. Every constraint value is read in advance in each type
a property might have (float, bool, glob, list items, typed literal), so evaluating against a
property set only looks keys up and compares; nothing is parsed per call. The matcher runs one
demand against every live offer, so this is the inner loop of the market.
"""

from __future__ import annotations

import enum
import functools
import operator
from collections.abc import Callable, Mapping
from typing import Any

from market.props.nodes import And, Compare, Node, Op, Or, Present, ValueType
from market.props.values import (
    as_f64,
    glob_matcher,
    parse_bool,
    parse_datetime,
    parse_decimal,
    parse_f64,
    parse_semver,
)

__all__ = ["Evaluator", "Tri", "compile_node"]


class Tri(enum.Enum):
    """The result of a constraint: only TRUE on both sides makes a match."""

    TRUE = "true"
    """The properties satisfy the constraint."""
    FALSE = "false"
    """The properties contradict the constraint."""
    UNDEFINED = "undefined"
    """The constraint cannot be decided: a property is absent or of an incomparable type."""

    @classmethod
    def of(cls, value: bool) -> Tri:
        """TRUE or FALSE."""
        return cls.TRUE if value else cls.FALSE

    def __invert__(self) -> Tri:
        return _NOT[self]

    def __and__(self, other: Tri) -> Tri:
        if self is Tri.FALSE or other is Tri.FALSE:
            return Tri.FALSE
        if self is Tri.UNDEFINED or other is Tri.UNDEFINED:
            return Tri.UNDEFINED
        return Tri.TRUE

    def __or__(self, other: Tri) -> Tri:
        if self is Tri.TRUE or other is Tri.TRUE:
            return Tri.TRUE
        if self is Tri.UNDEFINED or other is Tri.UNDEFINED:
            return Tri.UNDEFINED
        return Tri.FALSE


T = Tri.TRUE
F = Tri.FALSE
U = Tri.UNDEFINED
_NOT = {T: F, F: T, U: U}

Evaluator = Callable[[Mapping[str, Any]], Tri]
"""A compiled constraint: flat properties in, three-valued verdict out."""

_ORDER: dict[Op, Callable[[Any, Any], bool]] = {
    Op.EQ: operator.eq,
    Op.LE: operator.le,
    Op.GE: operator.ge,
    Op.LT: operator.lt,
    Op.GT: operator.gt,
}


def compile_node(node: Node) -> Evaluator:
    """Compile ``node`` into a function of flat properties."""
    if isinstance(node, Compare | Present):
        return _compile_leaf(node)
    if isinstance(node, And):
        return _compile_and(tuple(compile_node(c) for c in node.children))
    if isinstance(node, Or):
        return _compile_or(tuple(compile_node(c) for c in node.children))
    return _compile_not(compile_node(node.child))


@functools.lru_cache(maxsize=32768)
def _compile_leaf(node: Compare | Present) -> Evaluator:
    # Leaves recur across subscriptions ("(golem.com.pricing.model=linear)" is in every yapapi
    # demand), and sharing their closures keeps a market of 100 000 entries from holding, and the
    # garbage collector from scanning, 100 000 copies of each.
    if isinstance(node, Compare):
        if node.aspect is not None:
            # Properties carry no aspects in this system, so the comparison has nothing to read.
            return _constant(U)
        if node.value_type is not None:
            return _compile_typed(node.name, node.op, node.value, node.value_type)
        return _compile_plain(node.name, node.op, node.value)
    if node.aspect is not None:
        return _constant(F)
    return _compile_present(node.name)


def _constant(result: Tri) -> Evaluator:
    def evaluate(props: Mapping[str, Any]) -> Tri:
        return result

    return evaluate


def _compile_present(name: str) -> Evaluator:
    def evaluate(props: Mapping[str, Any]) -> Tri:
        return F if props.get(name) is None else T

    return evaluate


def _compile_and(fns: tuple[Evaluator, ...]) -> Evaluator:
    if not fns:
        return _constant(T)
    if len(fns) == 1:
        return fns[0]

    def evaluate(props: Mapping[str, Any]) -> Tri:
        undefined = False
        for fn in fns:
            r = fn(props)
            if r is F:
                return F
            if r is U:
                undefined = True
        return U if undefined else T

    return evaluate


def _compile_or(fns: tuple[Evaluator, ...]) -> Evaluator:
    if not fns:
        return _constant(F)
    if len(fns) == 1:
        return fns[0]

    def evaluate(props: Mapping[str, Any]) -> Tri:
        undefined = False
        for fn in fns:
            r = fn(props)
            if r is T:
                return T
            if r is U:
                undefined = True
        return U if undefined else F

    return evaluate


def _compile_not(fn: Evaluator) -> Evaluator:
    def evaluate(props: Mapping[str, Any]) -> Tri:
        return _NOT[fn(props)]

    return evaluate


# --- plain comparisons ------------------------------------------------------------------------

ElementTest = Callable[[Any], bool]


def element_equals(value: str) -> ElementTest:
    """Whether one property value (a list element) equals ``value`` under its own type's rules.

    Shared by "list contains" and set equality, and usable on any scalar: strings glob-match, numbers
    compare as f64, booleans read ``true``/``false``; anything else is never equal.
    """
    number = parse_f64(value)
    flag = parse_bool(value)
    if "*" in value:
        pattern = glob_matcher(value)

        def str_equal(x: str) -> bool:
            return pattern.fullmatch(x) is not None

    else:

        def str_equal(x: str) -> bool:
            return x == value

    def equal(x: Any) -> bool:
        t = type(x)
        if t is str:
            return str_equal(x)
        if t is float or t is int:
            return number is not None and as_f64(x) == number
        if t is bool:
            return flag is not None and x is flag
        if isinstance(x, bool):  # subclasses of the JSON types, checked slowly and rarely
            return flag is not None and bool(x) is flag
        if isinstance(x, str):
            return str_equal(str(x))
        if isinstance(x, int | float):
            return number is not None and as_f64(x) == number
        return False

    return equal


def set_literal_items(value: str) -> list[str] | None:
    """The items of a ``[a,b,...]`` list value (whitespace around items dropped), else None."""
    if len(value) < 2 or value[0] != "[" or value[-1] != "]":
        return None
    inner = value[1:-1]
    if not inner.strip():
        return []
    return [item.strip() for item in inner.split(",")]


def _list_test(op: Op, value: str) -> Callable[[list[Any]], Tri]:
    if op is not Op.EQ:
        return lambda items: F
    literal = set_literal_items(value)
    if literal is None:
        contains = element_equals(value)

        def test_contains(items: list[Any]) -> Tri:
            for x in items:
                if contains(x):
                    return T
            return F

        return test_contains
    wanted = [element_equals(item) for item in literal]

    def test_set(items: list[Any]) -> Tri:
        # Set equality: every wanted item is in the list and every list element is wanted.
        for eq in wanted:
            if not any(eq(x) for x in items):
                return F
        for x in items:
            if not any(eq(x) for eq in wanted):
                return F
        return T

    return test_set


def _compile_plain(name: str, op: Op, value: str) -> Evaluator:
    number = parse_f64(value)
    flag = parse_bool(value)
    cmp = _ORDER[op]
    list_test = _list_test(op, value)

    if op is Op.EQ and "*" in value:
        pattern = glob_matcher(value)

        def str_test(x: str) -> bool:
            return pattern.fullmatch(x) is not None

    else:

        def str_test(x: str) -> bool:
            return cmp(x, value)

    def fallback(x: Any) -> Tri:
        # Subclasses of the JSON types (rare: props normally come straight from json.loads).
        if isinstance(x, bool):
            return F if op is not Op.EQ or flag is None else Tri.of(bool(x) is flag)
        if isinstance(x, str):
            return T if str_test(str(x)) else F
        if isinstance(x, int | float):
            return F if number is None else Tri.of(cmp(as_f64(x), number))
        if isinstance(x, list | tuple):
            return list_test(list(x))
        return U

    if op is Op.EQ and "*" not in value:
        # The commonest leaf by far (subnet, runtime, pricing model): keep its path short.
        def evaluate_eq(props: Mapping[str, Any]) -> Tri:
            x = props.get(name)
            if x is None:
                return U
            t = type(x)
            if t is str:
                return T if x == value else F
            if t is float:
                return T if x == number else F
            if t is int:
                if number is None:
                    return F
                try:
                    return T if float(x) == number else F
                except OverflowError:  # beyond f64: yagna holds it as infinity
                    return T if as_f64(x) == number else F
            if t is bool:
                return T if x is flag else F
            if t is list:
                return list_test(x)
            return fallback(x)

        return evaluate_eq

    def evaluate(props: Mapping[str, Any]) -> Tri:
        x = props.get(name)
        if x is None:
            return U
        t = type(x)
        if t is str:
            return T if str_test(x) else F
        if t is float:
            return F if number is None else (T if cmp(x, number) else F)
        if t is int:
            if number is None:
                return F
            try:
                return T if cmp(float(x), number) else F
            except OverflowError:  # beyond f64: yagna holds it as infinity
                return T if cmp(as_f64(x), number) else F
        if t is bool:
            return F if op is not Op.EQ or flag is None else (T if x is flag else F)
        if t is list:
            return list_test(x)
        return fallback(x)

    return evaluate


# --- typed comparisons ($v, $d, $t) -----------------------------------------------------------

_TYPED_PARSERS: dict[ValueType, Callable[[str], Any]] = {
    ValueType.VERSION: parse_semver,
    ValueType.DECIMAL: parse_decimal,
    ValueType.DATETIME: parse_datetime,
}


def typed_parser(value_type: ValueType) -> Callable[[str], Any]:
    """The reader a ``$x`` suffix applies to both the property and the constraint value."""
    return _TYPED_PARSERS[value_type]


def _compile_typed(name: str, op: Op, value: str, value_type: ValueType) -> Evaluator:
    parse = _TYPED_PARSERS[value_type]
    wanted = parse(value)
    if wanted is None:
        # An unreadable constraint value can never be compared; an absent property is undefined too.
        return _constant(U)
    cmp = _ORDER[op]

    def evaluate(props: Mapping[str, Any]) -> Tri:
        x = props.get(name)
        if not isinstance(x, str):
            return U
        have = parse(x)
        if have is None:
            return U
        return T if cmp(have, wanted) else F

    return evaluate
