"""A recursive-descent parser for yagna's LDAP-filter dialect (spec §4.3).

Grammar, with whitespace allowed between filters, after ``(``, ``&``, ``|``, ``!`` and before ``)``::

    filter  := "(" ")" | "(" "&" filter* ")" | "(" "|" filter* ")" | "(" "!" filter ")"
             | "(" attr "=*" ")" | "(" attr op value ")"
    op      := "=" | "<=" | ">=" | "<" | ">"
    attr    := name ( "[" aspect "]" )? ( "$v" | "$d" | "$t" )?
    value   := any characters up to the next ")"   (verbatim, no escaping)

Errors carry the character offset and say what was expected there, because the text comes from
remote clients who only see the 400 response. Input size and nesting depth are bounded so a hostile
subscription cannot exhaust the recursion stack or the parse cache.
"""

from __future__ import annotations

import re
from typing import NoReturn

from market.props.errors import ConstraintSyntaxError
from market.props.nodes import And, Compare, Node, Not, Op, Or, Present, ValueType

__all__ = ["MAX_DEPTH", "MAX_LENGTH", "parse_node"]

MAX_LENGTH = 64 * 1024
"""Longest constraint text accepted (yagna's own limit)."""
MAX_DEPTH = 100
"""Deepest nesting of ``&``/``|``/``!`` groups accepted."""

_OPERATORS = "one of '=', '<=', '>=', '<', '>'"
_WS = re.compile(r"\s*")
_ATTR = re.compile(r"[^=<>~()\s]*")  # an attribute runs up to an operator, a parenthesis or a blank
_TYPE_SUFFIX = {"v": ValueType.VERSION, "d": ValueType.DECIMAL, "t": ValueType.DATETIME}


def parse_node(text: str) -> Node:
    """Parse ``text`` into a tree; empty or blank text is the match-all ``()``."""
    if len(text) > MAX_LENGTH:
        raise ConstraintSyntaxError(f"constraints longer than {MAX_LENGTH} characters", MAX_LENGTH, text)
    parser = _Parser(text)
    parser.skip_ws()
    if parser.pos == len(text):
        return And(())
    node = parser.filter(0)
    parser.skip_ws()
    if parser.pos != len(text):
        parser.fail("expected end of constraints")
    return node


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, message: str, position: int | None = None) -> NoReturn:
        raise ConstraintSyntaxError(message, self.pos if position is None else position, self.text)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_ws(self) -> None:
        self.pos = _WS.match(self.text, self.pos).end()  # type: ignore[union-attr]  # always matches

    def expect_close(self) -> None:
        self.skip_ws()
        if self.peek() != ")":
            self.fail("expected ')'")
        self.pos += 1

    def filter(self, depth: int) -> Node:
        if self.peek() != "(":
            self.fail("expected '('")
        if depth >= MAX_DEPTH:
            self.fail(f"constraints nested deeper than {MAX_DEPTH}")
        self.pos += 1
        self.skip_ws()
        c = self.peek()
        if c == ")":
            self.pos += 1
            return And(())
        if c in ("&", "|"):
            group = And if c == "&" else Or
            self.pos += 1
            children: list[Node] = []
            while True:
                self.skip_ws()
                c = self.peek()
                if c == ")":
                    self.pos += 1
                    break
                if c != "(":
                    self.fail("expected '(' or ')'")
                children.append(self.filter(depth + 1))
            return group(tuple(children))
        if c == "!":
            self.pos += 1
            self.skip_ws()
            child = self.filter(depth + 1)
            self.expect_close()
            return Not(child)
        return self.predicate()

    def predicate(self) -> Node:
        text = self.text
        start = self.pos
        pos = self.pos = _ATTR.match(text, start).end()  # type: ignore[union-attr]  # always matches
        if pos == start:
            if text[pos : pos + 1] in ("=", "<", ">", "~"):
                self.fail("expected an attribute name before the operator")
            self.fail("expected '&', '|', '!', an attribute or ')'")
        raw = text[start:pos]
        c = self.peek()
        if c == "~":
            self.fail(f"'~=' is not supported, expected {_OPERATORS}")
        if c not in ("=", "<", ">"):
            self.fail(f"expected {_OPERATORS}")
        if text.startswith(("<=", ">="), pos):
            op = Op.LE if c == "<" else Op.GE
            pos += 2
        else:
            op = {"=": Op.EQ, "<": Op.LT, ">": Op.GT}[c]
            pos += 1
        end = text.find(")", pos)
        if end < 0:
            self.pos = len(text)
            self.fail("expected ')'")
        value = text[pos:end]
        self.pos = end + 1
        name, aspect, value_type = self._attr(raw, start)
        try:
            if op is Op.EQ and value[:1] == "*" and not value[1:].strip():
                return Present(name, aspect, value_type)
            return Compare(name, op, value, aspect, value_type)
        except ValueError as e:  # pragma: no cover - the checks above reject all such input first
            self.fail(str(e), start)

    def _attr(self, raw: str, start: int) -> tuple[str, str | None, ValueType | None]:
        value_type = None
        if len(raw) >= 2 and raw[-2] == "$" and raw[-1] in _TYPE_SUFFIX:
            value_type = _TYPE_SUFFIX[raw[-1]]
            raw = raw[:-2]
            if not raw:
                self.fail("expected an attribute name before the type suffix", start)
        aspect = None
        if raw.endswith("]"):
            open_at = raw.rfind("[")
            if open_at <= 0 or open_at == len(raw) - 2:
                self.fail("expected '[aspect]' after the attribute name", start + max(open_at, 0))
            aspect = raw[open_at + 1 : -1]
            raw = raw[:open_at]
        for offset, ch in enumerate(raw):
            if ch in "[]":
                self.fail("unexpected bracket in attribute name", start + offset)
        if aspect is not None and ("[" in aspect or "]" in aspect):
            self.fail("unexpected bracket in aspect", start + len(raw) + 1)
        return raw, aspect, value_type
