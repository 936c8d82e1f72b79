"""Flat and nested property sets (spec §4.2).

Clients may send ``{"golem.inf.mem.gib": 4}`` or ``{"golem": {"inf": {"mem": {"gib": 4}}}}`` or a mix;
the market stores and returns the flat form only, because yapapi indexes proposals by dotted key.
A node that is both a value and a prefix keeps its own value under ``@tag``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from market.props.errors import PropertyError

__all__ = ["TAG", "flatten", "unflatten"]

TAG = "@tag"
"""The child key holding the value of a node that also has children."""


def flatten(props: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted-key form of ``props`` (flat, nested or mixed input).

    Arrays stay values, an empty object stays ``{}``. Raises :class:`PropertyError` when one key ends
    up with two different values, e.g. given both flat and nested, because silently picking one would
    make the matcher disagree with what the client believes it sent.
    """
    out: dict[str, Any] = {}
    for key, value in props.items():
        if not isinstance(key, str):
            raise PropertyError(f"property names must be strings, got {key!r}")
        if key == TAG:
            raise PropertyError(f"{TAG!r} is only meaningful inside an object")
        _walk(key, value, out)
    return out


def _walk(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, Mapping) and value:
        for key, child in value.items():
            if not isinstance(key, str):
                raise PropertyError(f"property names must be strings, got {key!r} under {prefix!r}")
            if key == TAG:
                if isinstance(child, Mapping) and child:
                    raise PropertyError(f"the {TAG!r} of {prefix!r} must be a value, not an object")
                _emit(prefix, {} if isinstance(child, Mapping) else child, out)
            else:
                _walk(f"{prefix}.{key}", child, out)
    else:
        _emit(prefix, {} if isinstance(value, Mapping) else value, out)


def _emit(key: str, value: Any, out: dict[str, Any]) -> None:
    if key in out and not _same(out[key], value):
        raise PropertyError(f"property {key!r} is given twice with different values")
    out[key] = value


def _same(a: Any, b: Any) -> bool:
    """JSON equality: unlike ``==``, ``1``, ``1.0`` and ``true`` are three different values."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


class _Tree:
    __slots__ = ("children", "has_value", "value")

    def __init__(self) -> None:
        self.children: dict[str, _Tree] = {}
        self.has_value = False
        self.value: Any = None

    def render(self) -> Any:
        if not self.children:
            return self.value
        rendered: dict[str, Any] = {}
        if self.has_value:
            rendered[TAG] = self.value
        for key, child in self.children.items():
            rendered[key] = child.render()
        return rendered


def unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    """Nested form of dotted-key ``flat``; the inverse of :func:`flatten`.

    For clients and tests that want the tree view. Raises :class:`PropertyError` for a ``@tag``
    segment, which the nested form could not express without ambiguity.
    """
    root = _Tree()
    for key, value in flat.items():
        if not isinstance(key, str):
            raise PropertyError(f"property names must be strings, got {key!r}")
        node = root
        for segment in key.split("."):
            if segment == TAG:
                raise PropertyError(f"property {key!r} has a {TAG!r} segment")
            child = node.children.get(segment)
            if child is None:
                child = node.children[segment] = _Tree()
            node = child
        if node.has_value and not _same(node.value, value):  # pragma: no cover - dict keys are unique
            raise PropertyError(f"property {key!r} is given twice with different values")
        node.has_value = True
        node.value = value
    result = root.render()
    return result if isinstance(result, dict) else {}
