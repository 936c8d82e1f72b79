"""The exception tree of :mod:`market.props`.

Everything here derives from :class:`PropsError`, which in turn roots in the project-wide
:class:`~market.core.errors.GolemError`, so the REST layer can map "the client sent properties or
constraints we cannot read" to a 400 in one place without knowing the individual cases.
"""

from __future__ import annotations

from market.core.errors import GolemError


class PropsError(GolemError):
    """Root of the property and constraint language errors."""


class PropertyError(PropsError):
    """A property set cannot be flattened or unflattened, e.g. one key given two different values."""


class ConstraintSyntaxError(PropsError):
    """A constraint string does not follow the grammar.

    ``position`` is the 0-based character offset where the parser gave up and ``text`` the whole
    input, so a client can be shown exactly where its filter went wrong.
    """

    def __init__(self, message: str, position: int, text: str) -> None:
        super().__init__(f"{message} at position {position}")
        self.reason = message
        self.position = position
        self.text = text
