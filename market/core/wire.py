"""The pydantic base for everything that crosses a wire.

Wire names are camelCase; Python names stay snake_case. Requests refuse unknown fields (a typo in a
client is an error, not a silently ignored option); responses and events tolerate them, so that an
older peer can read a newer one's messages.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class WireModel(BaseModel):
    """Base for responses and events: camelCase on the wire, unknown fields ignored."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        frozen=False,
    )

    def to_wire(self) -> dict[str, Any]:
        """The JSON-ready dict with wire (camelCase) names, ``None`` fields left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class RequestModel(WireModel):
    """Base for request bodies: like :class:`WireModel`, but unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")
