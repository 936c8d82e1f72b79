"""Configuration loading: defaults → TOML file → environment → flags.

Each component owns one pydantic model of its settings. :func:`load_config` layers the sources in
that order, so a flag beats the environment, which beats the file, which beats the model's default.
Environment variables are named ``<PREFIX><FIELD>`` in upper case (``GOLEM_MARKET_PORT``); a value
that starts with ``{`` or ``[`` is read as JSON, so tables and lists can come from the environment
too (``GOLEM_PROVIDER_PRICING='{"vm": {"duration_per_hour": "36"}}'``).
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from market.core.errors import ConfigError

C = TypeVar("C", bound=BaseModel)


def data_dir() -> Path:
    """Where daemons and the CLI keep state unless told otherwise (``GOLEM_DATA_DIR``)."""
    explicit = os.environ.get("GOLEM_DATA_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "golem"


def load_config(
    model: type[C],
    *,
    toml_path: Path | None = None,
    section: str | None = None,
    env_prefix: str = "",
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> C:
    """Build ``model`` from its layered sources; ``None`` overrides (unset flags) are ignored."""
    values: dict[str, Any] = {}
    if toml_path is not None:
        try:
            data = tomllib.loads(toml_path.read_text())
        except FileNotFoundError as exc:
            raise ConfigError(f"config file not found: {toml_path}") from exc
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config file {toml_path}: {exc}") from exc
        if section is not None:
            data = data.get(section, {})
            if not isinstance(data, dict):
                raise ConfigError(f"[{section}] in {toml_path} is not a table")
        values.update(data)
    env = os.environ if environ is None else environ
    if env_prefix:
        for name in model.model_fields:
            variable = f"{env_prefix}{name}".upper()
            raw = env.get(variable)
            if raw is not None:
                values[name] = _from_env(variable, raw)
    if overrides:
        values.update({k: v for k, v in overrides.items() if v is not None})
    unknown = sorted(set(values) - set(model.model_fields))
    if unknown:
        raise ConfigError(f"unknown setting(s) for {model.__name__}: {', '.join(unknown)}")
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
        raise ConfigError(f"invalid {model.__name__}: {problems}") from exc


def _from_env(variable: str, raw: str) -> Any:
    if not raw.lstrip().startswith(("{", "[")):
        return raw
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ConfigError(f"{variable} looks like JSON but is not: {exc}") from exc
