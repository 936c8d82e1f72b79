"""The constraint grammar (spec §4.3): what parses, to what tree, and where errors are reported."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from props_strategies import trees

from market.core.errors import GolemError
from market.props import (
    MATCH_ALL,
    And,
    Compare,
    Constraint,
    ConstraintSyntaxError,
    Node,
    Not,
    Op,
    Or,
    Present,
    ValueType,
    parse_constraints,
)
from market.props.parser import MAX_DEPTH, MAX_LENGTH

YAPAPI_DEMAND = (
    "(&(golem.node.debug.subnet=public)\n\t(|(golem.com.payment.platform.erc20-holesky-tglm.address=*))"
    "\n\t(golem.com.payment.protocol.version>1)\n\t(golem.com.pricing.model=linear)"
    "\n\t(&(golem.inf.mem.gib>=0.5)\n\t(golem.inf.storage.gib>=2.0)\n\t(golem.inf.cpu.threads>=1)"
    "\n\t(golem.runtime.name=vm)))"
)


@pytest.mark.parametrize(
    ("text", "tree"),
    [
        ("()", And(())),
        ("", And(())),
        ("  \n\t ", And(())),
        ("(&)", And(())),
        ("(|)", Or(())),
        ("(a=1)", Compare("a", Op.EQ, "1")),
        ("(a<=1)", Compare("a", Op.LE, "1")),
        ("(a>=1)", Compare("a", Op.GE, "1")),
        ("(a<1)", Compare("a", Op.LT, "1")),
        ("(a>1)", Compare("a", Op.GT, "1")),
        ("(a=*)", Present("a")),
        ("(a=* \t)", Present("a")),  # yagna's legacy grammar tolerates blanks after the star
        ("(a=*x)", Compare("a", Op.EQ, "*x")),
        ("(a=vm*)", Compare("a", Op.EQ, "vm*")),
        ("(a==1)", Compare("a", Op.EQ, "=1")),
        ("(a<>1)", Compare("a", Op.LT, ">1")),
        ("(a=)", Compare("a", Op.EQ, "")),
        ("(a= two words (x )", Compare("a", Op.EQ, " two words (x ")),
        ("(a=\n)", Compare("a", Op.EQ, "\n")),
        (
            "(golem.com.payment.debit-notes.accept-timeout?>=30)",
            Compare("golem.com.payment.debit-notes.accept-timeout?", Op.GE, "30"),
        ),
        ("(golem.!exp.gap-31.v0.node.descriptor=*)", Present("golem.!exp.gap-31.v0.node.descriptor")),
        ("(a[x]=1)", Compare("a", Op.EQ, "1", aspect="x")),
        ("(a$v>=1.0.0)", Compare("a", Op.GE, "1.0.0", value_type=ValueType.VERSION)),
        ("(a$d<1.5)", Compare("a", Op.LT, "1.5", value_type=ValueType.DECIMAL)),
        (
            "(a$t>2024-01-01T00:00:00Z)",
            Compare("a", Op.GT, "2024-01-01T00:00:00Z", value_type=ValueType.DATETIME),
        ),
        ("(a[x]$v=1.0.0)", Compare("a", Op.EQ, "1.0.0", aspect="x", value_type=ValueType.VERSION)),
        ("(a$v[x]=1)", Compare("a$v", Op.EQ, "1", aspect="x")),
        ("(a$x=1)", Compare("a$x", Op.EQ, "1")),
        ("(!(a=1))", Not(Compare("a", Op.EQ, "1"))),
        ("( ! \n (a=1) )", Not(Compare("a", Op.EQ, "1"))),
        (
            "(&(a=1)(|(b=2)(!(c=*))))",
            And((Compare("a", Op.EQ, "1"), Or((Compare("b", Op.EQ, "2"), Not(Present("c")))))),
        ),
        ("(&\n\t(a=1)\n\t(b=2)\n)", And((Compare("a", Op.EQ, "1"), Compare("b", Op.EQ, "2")))),
        ("  (& (a=1) () )  ", And((Compare("a", Op.EQ, "1"), And(())))),
    ],
)
def test_parses_to_tree(text: str, tree: Node) -> None:
    assert parse_constraints(text).root == tree


def test_yapapi_demand_parses_and_prints_canonically() -> None:
    c = parse_constraints(YAPAPI_DEMAND)
    assert str(c) == YAPAPI_DEMAND.replace("\n\t", "")
    assert parse_constraints(str(c)) == c
    assert c.required_equalities() == (
        ("golem.node.debug.subnet", "public"),
        ("golem.com.pricing.model", "linear"),
        ("golem.runtime.name", "vm"),
    )


@pytest.mark.parametrize(
    ("text", "position", "message"),
    [
        ("(a=1", 4, "expected ')'"),
        ("((a=1)", 1, "expected '&', '|', '!', an attribute or ')'"),
        ("(&(a=1)", 7, "expected '(' or ')'"),
        ("(&(a=1)x)", 7, "expected '(' or ')'"),
        ("(!(a=1)(b=2))", 7, "expected ')'"),
        ("(!)", 2, "expected '('"),
        ("(a~=1)", 2, "'~=' is not supported"),
        ("(a1)", 3, "expected one of '=', '<=', '>=', '<', '>'"),
        ("(a)", 2, "expected one of"),
        ("(a b=1)", 2, "expected one of"),
        ("(=1)", 1, "expected an attribute name"),
        ("(<5)", 1, "expected an attribute name"),
        ("($v=1)", 1, "expected an attribute name"),
        ("(a[]=1)", 2, "expected '[aspect]'"),
        ("([x]=1)", 1, "expected '[aspect]'"),
        ("(a[b=1)", 2, "unexpected bracket"),
        ("(a=1) x", 6, "expected end of constraints"),
        ("(a=1)(b=2)", 5, "expected end of constraints"),
        ("(a=1))", 5, "expected end of constraints"),
        ("a=1", 0, "expected '('"),
        ("(", 1, "expected '&', '|', '!', an attribute or ')'"),
        (")", 0, "expected '('"),
        ("(a=1)\n(", 6, "expected end of constraints"),
    ],
)
def test_syntax_errors_name_position_and_expectation(text: str, position: int, message: str) -> None:
    with pytest.raises(ConstraintSyntaxError) as caught:
        parse_constraints(text)
    err = caught.value
    assert (err.position, err.text) == (position, text)
    assert str(err).startswith(message)
    assert str(err).endswith(f"at position {position}")
    assert isinstance(err, GolemError)


def test_expected_close_paren_message_matches_the_documented_form() -> None:
    with pytest.raises(ConstraintSyntaxError, match=r"^expected '\)' at position 17$"):
        parse_constraints("(!(golem.inf.x=1)(y=2))")


def test_nesting_and_length_are_bounded() -> None:
    ok = "(!" * (MAX_DEPTH - 1) + "(a=1)" + ")" * (MAX_DEPTH - 1)
    assert parse_constraints(ok).evaluate({"a": 1}).value == ("false" if (MAX_DEPTH - 1) % 2 else "true")
    with pytest.raises(ConstraintSyntaxError, match="nested deeper"):
        parse_constraints("(!" * MAX_DEPTH + "(a=1)" + ")" * MAX_DEPTH)
    with pytest.raises(ConstraintSyntaxError, match="longer than"):
        parse_constraints("(a=" + "x" * MAX_LENGTH + ")")


def test_parse_is_cached_and_constraints_are_values() -> None:
    assert parse_constraints("(a=1)") is parse_constraints("(a=1)")
    assert parse_constraints("(&(a=1))") != parse_constraints("(a=1)")
    assert parse_constraints("( & (a=1))") == parse_constraints("(&(a=1))")
    assert hash(parse_constraints("( & (a=1))")) == hash(parse_constraints("(&(a=1))"))
    assert parse_constraints("") == MATCH_ALL == Constraint(And(()))
    assert MATCH_ALL.matches_all and not parse_constraints("(a=1)").matches_all
    assert repr(parse_constraints("(a=1)")) == "Constraint('(a=1)')"
    assert parse_constraints("(a=1)") != "(a=1)"


@pytest.mark.parametrize(
    "bad",
    [
        lambda: Compare("", Op.EQ, "1"),
        lambda: Compare("a b", Op.EQ, "1"),
        lambda: Compare("a=b", Op.EQ, "1"),
        lambda: Compare("&a", Op.EQ, "1"),
        lambda: Compare("a[x]", Op.EQ, "1"),
        lambda: Compare("a$v", Op.EQ, "1"),
        lambda: Compare("a", Op.EQ, "x)"),
        lambda: Compare("a", Op.EQ, "*"),
        lambda: Compare("a", Op.LT, "=1"),
        lambda: Compare("a", Op.EQ, "1", aspect=""),
        lambda: Present("a", aspect="x y"),
    ],
)
def test_nodes_without_a_textual_form_cannot_be_built(bad: object) -> None:
    with pytest.raises(ValueError):
        bad()  # type: ignore[operator]


@settings(max_examples=300, deadline=None)
@given(trees())
def test_print_parse_round_trip(tree: Node) -> None:
    c = Constraint(tree)
    again = parse_constraints(str(c))
    assert again.root == tree
    assert str(again) == str(c)


@settings(max_examples=100, deadline=None)
@given(trees())
def test_whitespace_between_filters_does_not_change_the_tree(tree: Node) -> None:
    text = str(Constraint(tree))
    # yapapi's layout: newline and tab after each group operator and between filters
    spaced = text.replace("(&", "(&\n\t").replace("(|", "(| ").replace("(!", "(!\n").replace(")(", ")\n\t(")
    # "(&" may also begin a value such as "(a=(&x)"; such trees would be re-spaced inside the value.
    if _safe(tree):
        assert parse_constraints(spaced).root == tree


def _safe(tree: Node) -> bool:
    if isinstance(tree, Compare):
        return not any(op in tree.value for op in ("(&", "(|", "(!"))
    if isinstance(tree, Present):
        return True
    if isinstance(tree, Not):
        return _safe(tree.child)
    return all(_safe(c) for c in tree.children)
