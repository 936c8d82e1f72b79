"""Flattening (spec §4.2): nested, flat and mixed input all end up as dotted keys, and back."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from market.core.errors import GolemError
from market.props import PropertyError, flatten, unflatten

COEFFS = [0.1, 0.2, 0.0]


@pytest.mark.parametrize(
    ("given_props", "flat"),
    [
        ({}, {}),
        ({"golem.inf.mem.gib": 4}, {"golem.inf.mem.gib": 4}),
        ({"golem": {"inf": {"mem": {"gib": 4}}}}, {"golem.inf.mem.gib": 4}),
        (
            {"golem.inf": {"mem.gib": 4, "cpu": {"threads": 2}}, "golem.runtime.name": "vm"},
            {"golem.inf.mem.gib": 4, "golem.inf.cpu.threads": 2, "golem.runtime.name": "vm"},
        ),
        (
            {"golem": {"com": {"pricing": {"model": {"@tag": "linear", "linear": {"coeffs": COEFFS}}}}}},
            {"golem.com.pricing.model": "linear", "golem.com.pricing.model.linear.coeffs": COEFFS},
        ),
        ({"a": {}}, {"a": {}}),
        ({"a": {"b": {}}}, {"a.b": {}}),
        ({"a": {"@tag": {}, "b": 1}}, {"a": {}, "a.b": 1}),
        ({"a": [{"b": 1}, [2]]}, {"a": [{"b": 1}, [2]]}),  # arrays are values, never flattened
        ({"a": None}, {"a": None}),
        ({"a": {"@tag": 1}}, {"a": 1}),
        ({"a.b": 1, "a": {"b": 1}}, {"a.b": 1}),  # the same value twice is no conflict
        ({"a": 1, "a.b": 2}, {"a": 1, "a.b": 2}),
        ({"golem.srv.caps.multi-activity": True, "x?": 1}, {"golem.srv.caps.multi-activity": True, "x?": 1}),
    ],
)
def test_flatten(given_props: dict[str, Any], flat: dict[str, Any]) -> None:
    assert flatten(given_props) == flat
    assert flatten(flat) == flat  # flat input is a fixed point


@pytest.mark.parametrize(
    "bad",
    [
        {"a.b": 1, "a": {"b": 2}},
        {"a.b": 1, "a": {"b": True}},  # 1 and true are different JSON values
        {"a.b": 1, "a": {"b": 1.0}},
        {"x.a": 1, "x": {"a": {"@tag": 2, "b": 3}}},  # a tag conflicts with a flat value
        {"a": {"@tag": {"x": 1}}},
        {"@tag": 1},
        {1: 2},
        {"a": {1: 2}},
    ],
)
def test_flatten_rejects_conflicts_and_nonsense(bad: dict[Any, Any]) -> None:
    with pytest.raises(PropertyError) as caught:
        flatten(bad)
    assert isinstance(caught.value, GolemError)


@pytest.mark.parametrize(
    ("flat", "nested"),
    [
        ({}, {}),
        ({"golem.inf.mem.gib": 4}, {"golem": {"inf": {"mem": {"gib": 4}}}}),
        (
            {"golem.com.pricing.model": "linear", "golem.com.pricing.model.linear.coeffs": COEFFS},
            {"golem": {"com": {"pricing": {"model": {"@tag": "linear", "linear": {"coeffs": COEFFS}}}}}},
        ),
        (
            {"golem.com.pricing.model.linear.coeffs": COEFFS, "golem.com.pricing.model": "linear"},
            {"golem": {"com": {"pricing": {"model": {"@tag": "linear", "linear": {"coeffs": COEFFS}}}}}},
        ),
        ({"a": {}}, {"a": {}}),
        ({"a": {}, "a.b": 1}, {"a": {"@tag": {}, "b": 1}}),
        ({"a": [1, 2]}, {"a": [1, 2]}),
    ],
)
def test_unflatten(flat: dict[str, Any], nested: dict[str, Any]) -> None:
    assert unflatten(flat) == nested
    assert flatten(nested) == flat


def test_unflatten_rejects_tag_segments() -> None:
    with pytest.raises(PropertyError):
        unflatten({"a.@tag": 1})


segments = st.text(alphabet="abcdef-_?!", min_size=1, max_size=4)
keys = st.lists(segments, min_size=1, max_size=4).map(".".join)
leaf_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3),
    max_leaves=5,
) | st.just({})


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(keys, leaf_values, max_size=8))
def test_flatten_inverts_unflatten(flat: dict[str, Any]) -> None:
    assert flatten(unflatten(flat)) == flat


nested_values = st.recursive(
    leaf_values,
    lambda inner: st.dictionaries(segments, inner, max_size=3),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(segments, nested_values, max_size=4))
def test_flatten_is_idempotent_and_unflatten_preserves_it(nested: dict[str, Any]) -> None:
    flat = flatten(nested)
    assert flatten(flat) == flat
    assert flatten(unflatten(flat)) == flat
    assert all(not isinstance(v, dict) or v == {} for v in flat.values())
