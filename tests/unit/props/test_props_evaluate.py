"""Three-valued evaluation (spec §4.1, §4.3): one row per typing rule, then the logic's laws."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from props_strategies import eval_names, eval_props, eval_values, json_values, trees

from market.props import And, Constraint, Node, Not, Or, Tri, parse_constraints

T, F, U = Tri.TRUE, Tri.FALSE, Tri.UNDEFINED

CASES: list[tuple[str, dict[str, Any], Tri]] = [
    # presence: never undefined
    ("(a=*)", {"a": 1}, T),
    ("(a=*)", {"a": False}, T),
    ("(a=*)", {"a": {}}, T),
    ("(a=*)", {"a": []}, T),
    ("(a=*)", {}, F),
    ("(a=*)", {"a": None}, F),  # null makes a property unparseable: treated as absent
    ("(a=*)", {"a.b": 1}, F),  # a prefix is not a property
    ("(a[x]=*)", {"a": 1}, F),
    # absent or null: any comparison is undefined
    ("(a=1)", {}, U),
    ("(a=1)", {"a": None}, U),
    ("(a>1)", {"b": 2}, U),
    # strings: exact, case-sensitive, '*' wildcards, lexicographic order, value verbatim
    ("(a=public)", {"a": "public"}, T),
    ("(a=public)", {"a": "private"}, F),
    ("(a=Public)", {"a": "public"}, F),
    ("(a=pub*)", {"a": "public"}, T),
    ("(a=*lic)", {"a": "public"}, T),
    ("(a=p*b*c)", {"a": "pXbYc"}, T),
    ("(a=p*b*c)", {"a": "pXbYcd"}, F),
    ("(a=vm*)", {"a": "vm"}, T),
    ("(a=**)", {"a": ""}, T),
    ("(a=a.c)", {"a": "abc"}, F),  # only '*' is special: the dot is literal
    ("(a=a+)", {"a": "a+"}, T),
    ("(a=x*)", {"a": "x\ny"}, T),
    ("(a= public)", {"a": "public"}, F),
    ("(a= public)", {"a": " public"}, T),
    ("(a=)", {"a": ""}, T),
    ("(a=3)", {"a": "3"}, T),
    ("(a=3.0)", {"a": "3"}, F),  # a string property compares as a string
    ("(a>10)", {"a": "9"}, T),  # ...lexicographically
    ("(a<b)", {"a": "a"}, T),
    ("(a>b)", {"a": "a"}, F),
    ("(a>=abc)", {"a": "abc"}, T),
    ("(a<=abc)", {"a": "abd"}, F),
    ("(a>ab*)", {"a": "abc"}, T),  # no wildcards outside '='
    ("(a=true)", {"a": "true"}, T),
    # numbers: the value read as f64 (Rust rules), a failed read is false
    ("(a=3)", {"a": 3}, T),
    ("(a=3.0)", {"a": 3}, T),
    ("(a=3)", {"a": 3.0}, T),
    ("(a=3)", {"a": 3.5}, F),
    ("(a=1e1)", {"a": 10}, T),
    ("(a=.5)", {"a": 0.5}, T),
    ("(a=+2)", {"a": 2}, T),
    ("(a>=0.5)", {"a": 4}, T),
    ("(a<0.5)", {"a": 4}, F),
    ("(a>1)", {"a": 3}, T),
    ("(a>1)", {"a": 1}, F),
    ("(a<=-1)", {"a": -1}, T),
    ("(a>1700000000000)", {"a": 1795262423052}, T),
    ("(a=abc)", {"a": 3}, F),
    ("(a>=abc)", {"a": 3}, F),
    ("(a>= 4)", {"a": 4}, F),  # Rust's f64 parser refuses whitespace...
    ("(a=1_0)", {"a": 10}, F),  # ...and digit separators
    ("(a=3*)", {"a": 3}, F),
    ("(a=inf)", {"a": 2**1100}, T),  # huge integers saturate like f64
    ("(a<inf)", {"a": 1e308}, T),
    ("(a=nan)", {"a": float("nan")}, F),
    ("(a>=1)", {"a": float("nan")}, F),
    # booleans: 'true'/'false' in any case for '=', never ordered
    ("(a=true)", {"a": True}, T),
    ("(a=TRUE)", {"a": True}, T),
    ("(a=False)", {"a": False}, T),
    ("(a=false)", {"a": True}, F),
    ("(a=yes)", {"a": True}, F),
    ("(a=1)", {"a": True}, F),
    ("(a>=true)", {"a": True}, F),
    ("(a<false)", {"a": True}, F),
    # lists: '=' with one value is "contains", with [a,b] set equality; never ordered
    ("(a=vpn)", {"a": ["vpn", "inet"]}, T),
    ("(a=gpu)", {"a": ["vpn", "inet"]}, F),
    ("(a=v*)", {"a": ["inet", "vpn"]}, T),
    ("(a=vpn)", {"a": []}, F),
    ("(a=[vpn,inet])", {"a": ["inet", "vpn"]}, T),
    ("(a=[inet, vpn])", {"a": ["vpn", "inet"]}, T),
    ("(a=[vpn])", {"a": ["vpn", "inet"]}, F),
    ("(a=[vpn,inet,gpu])", {"a": ["vpn", "inet"]}, F),
    ("(a=[vpn,vpn])", {"a": ["vpn"]}, T),
    ("(a=[])", {"a": []}, T),
    ("(a=[])", {"a": ["x"]}, F),
    ("(a=[v*])", {"a": ["vpn", "vm"]}, T),
    ("(a=3)", {"a": [1, 2, 3]}, T),
    ("(a=3)", {"a": ["3"]}, T),
    ("(a=3.0)", {"a": ["3"]}, F),
    ("(a=[1,2])", {"a": [2.0, 1]}, T),
    ("(a=[1,x])", {"a": [1, "x"]}, T),
    ("(a=true)", {"a": [True]}, T),
    ("(a=x)", {"a": [None, {}, ["x"]]}, F),  # elements that are no scalar never equal
    ("(a>1)", {"a": [2]}, F),
    ("(a<=z)", {"a": ["a"]}, F),
    # objects cannot be compared
    ("(a=x)", {"a": {}}, U),
    ("(a>1)", {"a": {}}, U),
    # aspects: properties carry none here
    ("(a[x]=1)", {"a": 1}, U),
    ("(a[x]=1)", {}, U),
    # $v: semantic versions
    ("(a$v>=1.2.0)", {"a": "1.10.0"}, T),
    ("(a>=1.2.0)", {"a": "1.10.0"}, F),  # without $v: lexicographic
    ("(a$v<1.0.0)", {"a": "1.0.0-rc.1"}, T),
    ("(a$v=1.0.0)", {"a": "1.0.0+build.5"}, T),
    ("(a$v>1.0.0-alpha)", {"a": "1.0.0-alpha.1"}, T),
    ("(a$v>1.0.0-alpha.10)", {"a": "1.0.0-alpha.9"}, F),
    ("(a$v>1.0.0-alpha.beta)", {"a": "1.0.0-alpha.9"}, F),
    ("(a$v>1.0.0-beta)", {"a": "1.0.0-alpha.9"}, F),
    ("(a$v>=1.0)", {"a": "1.0.0"}, U),
    ("(a$v>=1.0.0)", {"a": "abc"}, U),
    ("(a$v>=1.0.0)", {"a": "01.0.0"}, U),
    ("(a$v>=1.0.0)", {"a": 1}, U),
    ("(a$v>=1.0.0)", {}, U),
    # $d: exact decimals
    ("(a$d>=0.1)", {"a": "0.10"}, T),
    ("(a$d=0.1)", {"a": "0.10"}, T),
    ("(a$d<1e-3)", {"a": "0.0001"}, T),
    ("(a$d>0.30000000000000004)", {"a": "0.3"}, F),
    ("(a$d=x)", {"a": "1"}, U),
    ("(a$d>1)", {"a": "NaN"}, U),
    ("(a$d>1)", {"a": 2}, U),
    # $t: RFC 3339 datetimes, compared as instants
    ("(a$t<2024-01-01T00:00:00Z)", {"a": "2023-12-31T23:00:00-02:00"}, F),
    ("(a$t<2024-01-01T00:00:00Z)", {"a": "2023-12-31T23:00:00+00:00"}, T),
    ("(a$t=2024-01-01T00:00:00Z)", {"a": "2024-01-01T01:00:00+01:00"}, T),
    ("(a$t>=2024-01-01T00:00:00.5Z)", {"a": "2024-01-01t00:00:00.500000001z"}, T),
    ("(a$t>2024-01-01)", {"a": "2024-02-01T00:00:00Z"}, U),
    ("(a$t>2024-01-01T00:00:00Z)", {"a": "yesterday"}, U),
    ("(a$t>2024-01-01T00:00:00Z)", {"a": "2024-02-01T00:00:00"}, U),  # the offset is mandatory
    # connectives
    ("()", {}, T),
    ("(&)", {}, T),
    ("(|)", {}, F),
    ("(&(a=1)(b=2))", {"a": 1, "b": 2}, T),
    ("(&(a=1)(b=2))", {"a": 1, "b": 3}, F),
    ("(&(a=1)(b=2))", {"a": 1}, U),
    ("(&(a=2)(b=2))", {"a": 1}, F),  # false beats undefined
    ("(|(a=1)(b=2))", {"a": 1}, T),  # true beats undefined
    ("(|(a=1)(b=2))", {"b": 3}, U),
    ("(|(a=1)(b=2))", {"a": 2, "b": 3}, F),
    ("(!(a=1))", {"a": 1}, F),
    ("(!(a=1))", {"a": 2}, T),
    ("(!(a=1))", {}, U),
    ("(!(a=*))", {}, T),
]


@pytest.mark.parametrize(("text", "props", "expected"), CASES)
def test_semantics(text: str, props: dict[str, Any], expected: Tri) -> None:
    assert parse_constraints(text).evaluate(props) is expected


def test_subclasses_of_json_types_are_read_like_the_types() -> None:
    class Name(str):
        pass

    class Count(int):
        pass

    assert parse_constraints("(a=vm*)").evaluate({"a": Name("vm1")}) is T
    assert parse_constraints("(a>=3)").evaluate({"a": Count(4)}) is T
    assert parse_constraints("(a=vpn)").evaluate({"a": ("vpn", "inet")}) is T
    assert parse_constraints("(a=x)").evaluate({"a": {1, 2}}) is U


def test_tri_operators() -> None:
    assert [~T, ~F, ~U] == [F, T, U]
    assert [T & T, T & U, U & F, F & T] == [T, U, F, F]
    assert [F | F, F | U, U | T, T | F] == [F, U, T, T]
    assert (Tri.of(True), Tri.of(False)) == (T, F)


def _eval(node: Node, props: dict[str, Any]) -> Tri:
    return Constraint(node).evaluate(props)


nodes = trees(eval_names, eval_values)


@settings(max_examples=300, deadline=None)
@given(nodes, nodes, eval_props)
def test_connectives_follow_three_valued_logic(a: Node, b: Node, props: dict[str, Any]) -> None:
    ra, rb = _eval(a, props), _eval(b, props)
    assert _eval(Not(a), props) is ~ra
    assert _eval(Not(Not(a)), props) is ra
    assert _eval(And((a, b)), props) is (ra & rb)
    assert _eval(Or((a, b)), props) is (ra | rb)
    assert _eval(And((a,)), props) is ra
    assert _eval(Or((a,)), props) is ra
    # De Morgan holds in Kleene's logic, which is what yagna implements
    assert _eval(Not(And((a, b))), props) is _eval(Or((Not(a), Not(b))), props)
    assert _eval(Not(Or((a, b))), props) is _eval(And((Not(a), Not(b))), props)
    # order of children never matters
    assert _eval(And((b, a)), props) is (ra & rb)
    assert _eval(Or((b, a)), props) is (ra | rb)


@settings(max_examples=200, deadline=None)
@given(nodes, eval_props)
def test_evaluation_is_total_and_ignores_unrelated_keys(tree: Node, props: dict[str, Any]) -> None:
    result = _eval(tree, props)
    assert result in (T, F, U)
    assert _eval(tree, {**props, "zzz.unrelated": 1}) is result


@settings(max_examples=200, deadline=None)
@given(eval_names, json_values)
def test_presence_is_two_valued(name: str, value: Any) -> None:
    result = parse_constraints(f"({name}=*)").evaluate({name: value})
    assert result is (F if value is None else T)
