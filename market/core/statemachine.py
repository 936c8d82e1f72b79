"""Support for the one-transition-table-per-object rule.

Each negotiated object declares an Enum of states and a module-level table mapping a state to the
states it may move to; :func:`transition` is the only way to change state and raises
:class:`~market.core.errors.InvalidTransition` on an edge the table does not list.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import TypeVar

from market.core.errors import InvalidTransition

S = TypeVar("S", bound=Enum)


def transition(kind: str, table: Mapping[S, frozenset[S]], current: S, target: S) -> S:
    """Return ``target`` if ``current -> target`` is an edge of ``table``, else raise."""
    if target not in table.get(current, frozenset()):
        raise InvalidTransition(kind, str(current.value), str(target.value))
    return target


def terminal_states(table: Mapping[S, frozenset[S]]) -> frozenset[S]:
    """The states with no way out."""
    return frozenset(state for state, targets in table.items() if not targets)
