"""Named presets: a runtime and its pricing, stored as JSON in the data dir (``presets.json``).

``golem provider preset list|create|update`` edits them; a daemon configured with
``active_presets`` publishes one offer per named preset instead of one per enabled runtime.
"""

from __future__ import annotations

import json
import os
from decimal import Decimal
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from market.core.errors import GolemError
from provider.config import Pricing, RuntimeName


def format_glm(amount: Decimal) -> str:
    """``amount`` as an operator reads it: plain digits, no exponent, no trailing zeros (``0.1``,
    ``0.000010649402105557``, ``12``)."""
    return format(amount.normalize(), "f")


def describe_pricing(pricing: Pricing) -> str:
    """The prices in the units operators set them in: ``0.1 GLM/CPU-hour, 0.02 GLM/hour, start 0 GLM``."""
    return (
        f"{format_glm(pricing.cpu_per_hour)} GLM/CPU-hour, {format_glm(pricing.duration_per_hour)} GLM/hour, "
        f"start {format_glm(pricing.start_price)} GLM"
    )


class PresetError(GolemError):
    """A preset is missing, duplicated, or the presets file cannot be read."""


class Preset(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    runtime: RuntimeName
    pricing: Pricing = Field(default_factory=Pricing)


class _PresetFile(BaseModel):
    presets: list[Preset] = Field(default_factory=list)


class PresetStore:
    """The presets file; every call reads or rewrites it whole (it holds a handful of entries)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def all(self) -> list[Preset]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise PresetError(f"cannot read {self.path}: {exc}") from exc
        try:
            return _PresetFile.model_validate_json(text).presets
        except ValidationError as exc:
            raise PresetError(f"{self.path} is not a valid presets file: {exc.errors()[0]['msg']}") from exc

    def get(self, name: str) -> Preset:
        for preset in self.all():
            if preset.name == name:
                return preset
        raise PresetError(f"no preset named {name!r}")

    def create(self, preset: Preset) -> Preset:
        presets = self.all()
        if any(p.name == preset.name for p in presets):
            raise PresetError(f"a preset named {preset.name!r} already exists")
        self._write([*presets, preset])
        return preset

    def update(
        self,
        name: str,
        *,
        runtime: RuntimeName | None = None,
        pricing: dict[str, object] | None = None,
    ) -> Preset:
        """Change a preset's runtime and/or some of its prices (the fields given)."""
        presets = self.all()
        for index, preset in enumerate(presets):
            if preset.name == name:
                merged = preset.pricing.model_dump()
                merged.update({k: v for k, v in (pricing or {}).items() if v is not None})
                try:
                    updated = Preset(
                        name=name, runtime=runtime or preset.runtime, pricing=Pricing.model_validate(merged)
                    )
                except ValidationError as exc:
                    raise PresetError(f"invalid preset: {exc.errors()[0]['msg']}") from exc
                presets[index] = updated
                self._write(presets)
                return updated
        raise PresetError(f"no preset named {name!r}")

    def _write(self, presets: list[Preset]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".json.tmp")
        text = json.dumps(_PresetFile(presets=presets).model_dump(mode="json"), indent=2) + "\n"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        tmp.replace(self.path)
