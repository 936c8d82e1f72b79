"""A parsed, compiled constraint: the unit every subscription and proposal carries.

Parsing is cached by text because many subscriptions send byte-identical filters (every yapapi
requestor of a given version, every ya-provider preset), and a :class:`Constraint` is immutable, so
sharing one instance is safe and lets the matcher memoise per constraint.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from market.props.evaluate import Evaluator, Tri, compile_node
from market.props.nodes import And, Compare, Node, Op, Or, Present, to_text
from market.props.parser import parse_node

__all__ = ["MATCH_ALL", "Constraint", "parse_constraints"]


class Constraint:
    """An immutable constraint tree plus its compiled evaluator.

    Build one with :func:`parse_constraints` (or ``Constraint(node)`` from a tree). ``str()`` gives
    the canonical text, which parses back to an equal constraint.
    """

    __slots__ = ("_evaluate", "_hash", "_root", "_text")

    def __init__(self, root: Node) -> None:
        self._root = root
        self._text = to_text(root)
        self._hash = hash(self._text)
        self._evaluate = compile_node(root)

    @property
    def root(self) -> Node:
        """The syntax tree, for code that needs to walk it (indexes, explanations)."""
        return self._root

    @property
    def evaluator(self) -> Evaluator:
        """The compiled function behind :meth:`evaluate`, for hot loops that call it directly."""
        return self._evaluate

    def evaluate(self, props: Mapping[str, Any]) -> Tri:
        """Three-valued verdict of this constraint on FLAT properties."""
        return self._evaluate(props)

    @property
    def matches_all(self) -> bool:
        """True for the empty constraint ``()``, which every property set satisfies."""
        return self._root == And(())

    def required_equalities(self) -> tuple[tuple[str, str], ...]:
        """``(name, value)`` of each plain equality that must hold for the constraint to be TRUE.

        Only equalities without wildcard, list literal, aspect or type suffix, reached through
        conjunctions (and one-armed disjunctions such as yapapi's ``(|(x=*))``), qualify: for those,
        TRUE on a string property means the property equals the value exactly, which is what a hash
        index can look up.
        """
        found: list[tuple[str, str]] = []
        for leaf in required_leaves(self._root):
            if (
                isinstance(leaf, Compare)
                and leaf.op is Op.EQ
                and leaf.aspect is None
                and leaf.value_type is None
                and "*" not in leaf.value
                and not (leaf.value.startswith("[") and leaf.value.endswith("]"))
            ):
                found.append((leaf.name, leaf.value))
        return tuple(dict.fromkeys(found))

    def __str__(self) -> str:
        return self._text

    def __repr__(self) -> str:
        return f"Constraint({self._text!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Constraint):
            return NotImplemented
        return self is other or self._text == other._text  # the text is canonical

    def __hash__(self) -> int:
        return self._hash


def required_leaves(node: Node) -> list[Compare | Present]:
    """Leaves that must each be TRUE for ``node`` to be TRUE (conjunction paths only)."""
    out: list[Compare | Present] = []
    _collect(node, out)
    return out


def _collect(node: Node, out: list[Compare | Present]) -> None:
    if isinstance(node, Compare | Present):
        out.append(node)
    elif isinstance(node, And) or (isinstance(node, Or) and len(node.children) == 1):
        for child in node.children:
            _collect(child, out)


@functools.lru_cache(maxsize=8192)
def parse_constraints(text: str) -> Constraint:
    """Parse constraint text (spec §4.3); empty or blank text is the match-all ``()``.

    Raises :class:`~market.props.errors.ConstraintSyntaxError` with the offending position. Results
    are cached by text and shared, which is safe because constraints are immutable.
    """
    return Constraint(parse_node(text))


MATCH_ALL = Constraint(And(()))
"""The empty constraint ``()``."""
