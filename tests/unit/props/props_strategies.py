"""Hypothesis strategies for constraint trees and property sets, shared by the props tests."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from market.props import And, Compare, Node, Not, Op, Or, Present, ValueType


def _valid(build: Any) -> Any:
    """Build a node, or None when its parts have no textual form (the node refuses them)."""
    try:
        return build()
    except ValueError:
        return None


any_names = st.from_regex(r"[a-z!?][a-z0-9_.!?$@-]{0,10}", fullmatch=True)
"""Attribute names of the shapes real properties have (dots, dashes, ``?``, ``!``, ``$``)."""

aspects = st.none() | st.from_regex(r"[a-z][a-z0-9_-]{0,5}", fullmatch=True)
value_types = st.none() | st.sampled_from(list(ValueType))
values = st.text(
    alphabet=st.characters(blacklist_characters=")", blacklist_categories=("Cs",)),
    max_size=12,
)
"""Constraint values: anything but ``)``, including whitespace, ``(``, ``*``, ``=`` and non-ASCII."""


def leaves(names: st.SearchStrategy[str], value_strategy: st.SearchStrategy[str] = values) -> Any:
    present = st.builds(
        lambda n, a, t: _valid(lambda: Present(n, a, t)),
        names,
        aspects | st.none(),
        value_types,
    )
    compare = st.builds(
        lambda n, op, v, a, t: _valid(lambda: Compare(n, op, v, a, t)),
        names,
        st.sampled_from(list(Op)),
        value_strategy,
        st.none() | st.none() | aspects,
        st.none() | st.none() | value_types,
    )
    return (present | compare).filter(lambda node: node is not None)


def trees(names: st.SearchStrategy[str] = any_names, value_strategy: st.SearchStrategy[str] = values) -> Any:
    def extend(children: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
        groups = st.lists(children, max_size=4).map(tuple)
        return st.builds(And, groups) | st.builds(Or, groups) | st.builds(Not, children)

    return st.recursive(leaves(names, value_strategy), extend, max_leaves=10)


EVAL_KEYS = ["a", "b", "c", "a.b"]
eval_names = st.sampled_from(EVAL_KEYS)
eval_values = st.sampled_from(
    [
        "1",
        "3",
        "3.0",
        "x",
        "x*",
        "*",
        "true",
        "False",
        "[1,x]",
        "[]",
        "1.2.3",
        "2024-01-01T00:00:00Z",
        "",
        "0.5",
    ]
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-5, 5)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from(["1", "3", "x", "xy", "true", "1.2.3", "1.10.0", "2024-01-01T00:00:00Z", ""])
)
json_values = scalars | st.lists(scalars, max_size=3) | st.just({})
eval_props = st.dictionaries(eval_names, json_values, max_size=4)
"""Flat property sets over the keys the evaluation trees mention, so comparisons actually fire."""
