"""The syntax tree of a constraint, and its canonical text.

The nodes are frozen dataclasses so that trees compare and hash by value: two subscriptions that
send the same filter get equal trees, and the parse cache can hand out one shared instance.

Each leaf validates on construction that it is something the parser could have produced. That is
what makes ``parse(to_text(node)) == node`` hold for every tree, not just for parsed ones: a name
containing ``=`` or a value containing ``)`` has no textual form, so such a node cannot exist.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import TypeAlias

__all__ = [
    "And",
    "Compare",
    "Node",
    "Not",
    "Op",
    "Or",
    "Present",
    "ValueType",
    "to_text",
]

_FORBIDDEN = re.compile(r"[=<>~()\[\]\s]")
"""Characters that end or structure an attribute reference, so no name or aspect contains them."""


class Op(enum.Enum):
    """A comparison operator; the value is its spelling in constraint text."""

    EQ = "="
    LE = "<="
    GE = ">="
    LT = "<"
    GT = ">"


class ValueType(enum.Enum):
    """A ``$x`` suffix on an attribute: reinterpret a string property before comparing."""

    VERSION = "v"
    """``$v``: a semantic version (``1.2.3-rc.1``)."""
    DECIMAL = "d"
    """``$d``: an exact decimal number."""
    DATETIME = "t"
    """``$t``: an RFC 3339 timestamp with offset."""


def _check_attr(name: str, aspect: str | None, value_type: ValueType | None) -> None:
    if not name:
        raise ValueError("attribute name must not be empty")
    if name[0] in "&|!":
        raise ValueError(f"attribute name must not start with {name[0]!r}: {name!r}")
    for part, what in ((name, "name"), (aspect or "", "aspect")):
        bad = _FORBIDDEN.search(part)
        if bad:
            raise ValueError(f"attribute {what} {part!r} contains {bad.group()!r}")
    if aspect == "":
        raise ValueError("aspect must not be empty")
    if aspect is None and value_type is None and len(name) >= 2 and name[-2] == "$" and name[-1] in "vdt":
        # Printed bare, the tail would read back as a type suffix.
        raise ValueError(f"attribute name {name!r} ends like a type suffix")


def _attr_text(name: str, aspect: str | None, value_type: ValueType | None) -> str:
    text = name
    if aspect is not None:
        text += f"[{aspect}]"
    if value_type is not None:
        text += f"${value_type.value}"
    return text


def _is_presence_value(value: str) -> bool:
    return value[:1] == "*" and not value[1:].strip()


@dataclass(frozen=True, slots=True)
class Present:
    """``(name=*)``: true when the property exists (and is not null), false otherwise."""

    name: str
    aspect: str | None = None
    value_type: ValueType | None = None

    def __post_init__(self) -> None:
        _check_attr(self.name, self.aspect, self.value_type)

    @property
    def attr(self) -> str:
        """The attribute as written in constraint text, suffixes included."""
        return _attr_text(self.name, self.aspect, self.value_type)


@dataclass(frozen=True, slots=True)
class Compare:
    """``(name op value)``: the value is kept verbatim and typed only against a property."""

    name: str
    op: Op
    value: str
    aspect: str | None = None
    value_type: ValueType | None = None

    def __post_init__(self) -> None:
        _check_attr(self.name, self.aspect, self.value_type)
        if ")" in self.value:
            raise ValueError(f"constraint value {self.value!r} contains ')'")
        if self.op is Op.EQ and _is_presence_value(self.value):
            raise ValueError("'=*' is a presence test; use Present")
        if self.op in (Op.LT, Op.GT) and self.value.startswith("="):
            raise ValueError(f"value {self.value!r} after {self.op.value!r} would read as another operator")

    @property
    def attr(self) -> str:
        """The attribute as written in constraint text, suffixes included."""
        return _attr_text(self.name, self.aspect, self.value_type)


@dataclass(frozen=True, slots=True)
class And:
    """``(&f*)``: true when every child is; the empty conjunction (also spelled ``()``) is true."""

    children: tuple[Node, ...] = ()


@dataclass(frozen=True, slots=True)
class Or:
    """``(|f*)``: true when some child is; the empty disjunction is false."""

    children: tuple[Node, ...] = ()


@dataclass(frozen=True, slots=True)
class Not:
    """``(!f)``: flips true and false, keeps undefined."""

    child: Node


Node: TypeAlias = And | Or | Not | Present | Compare


def to_text(node: Node) -> str:
    """The canonical constraint text of ``node``: no whitespace, the empty conjunction as ``()``."""
    parts: list[str] = []
    _write(node, parts)
    return "".join(parts)


def _write(node: Node, out: list[str]) -> None:
    if isinstance(node, Compare):
        out.append(f"({node.attr}{node.op.value}{node.value})")
    elif isinstance(node, Present):
        out.append(f"({node.attr}=*)")
    elif isinstance(node, And):
        if not node.children:
            out.append("()")
            return
        out.append("(&")
        for child in node.children:
            _write(child, out)
        out.append(")")
    elif isinstance(node, Or):
        out.append("(|")
        for child in node.children:
            _write(child, out)
        out.append(")")
    else:
        out.append("(!")
        _write(node.child, out)
        out.append(")")
