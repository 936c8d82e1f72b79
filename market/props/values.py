"""Reading constraint values (always text) in the type of the property they are compared with.

Yagna is written in Rust, so "parse as a number" means Rust's ``f64::from_str``: no surrounding
whitespace and no ``_`` separators, both of which Python's ``float()`` would accept. Mirroring it
keeps ``(golem.inf.mem.gib>= 4)`` false here exactly as it is on a yagna market.
"""

from __future__ import annotations

import functools
import math
import re
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = [
    "SemVer",
    "as_f64",
    "glob_matcher",
    "parse_bool",
    "parse_datetime",
    "parse_decimal",
    "parse_f64",
    "parse_semver",
]

_F64 = re.compile(r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf|infinity|nan)", re.IGNORECASE)


def parse_f64(text: str) -> float | None:
    """``text`` as Rust's ``f64::from_str`` reads it, or None if Rust would refuse it."""
    if _F64.fullmatch(text) is None:
        return None
    return float(text)


def as_f64(number: int | float) -> float:
    """A JSON number as the f64 yagna holds it in (huge integers saturate to infinity)."""
    try:
        return float(number)
    except OverflowError:
        return math.inf if number > 0 else -math.inf


def parse_bool(text: str) -> bool | None:
    """``true``/``false`` in any letter case, else None."""
    lowered = text.lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    return None


def glob_matcher(pattern: str) -> re.Pattern[str]:
    """A regex that fully matches what ``pattern`` matches, ``*`` being the only wildcard.

    Yagna pastes the pattern into a regex unescaped, so ``.`` there matches any character; we escape
    it because a subnet or runtime name with a dot is meant literally.
    """
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


# --- typed reinterpretations ($v, $d, $t) -------------------------------------------------------

_SEMVER = re.compile(
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?"
    r"(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?"
)

SemVer = tuple[int, int, int, tuple[Any, ...]]
"""A sortable key: major, minor, patch, then the pre-release ranking (release sorts last)."""


@functools.lru_cache(maxsize=4096)
def parse_semver(text: str) -> SemVer | None:
    """Semantic-version precedence key of ``text`` (build metadata ignored), or None."""
    m = _SEMVER.fullmatch(text)
    if m is None:
        return None
    pre = m.group(4)
    if pre is None:
        rank: tuple[Any, ...] = (1,)
    else:
        # Numeric identifiers sort numerically and before alphanumeric ones; a shorter list of
        # otherwise equal identifiers sorts first. Tuples compare exactly that way.
        ids = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split("."))
        rank = (0, ids)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3)), rank)


_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


@functools.lru_cache(maxsize=4096)
def parse_decimal(text: str) -> Decimal | None:
    """``text`` as an exact decimal (no NaN, no infinities, no whitespace), or None."""
    if _DECIMAL.fullmatch(text) is None:
        return None
    try:
        return Decimal(text)
    except InvalidOperation:  # pragma: no cover - the regex admits only valid literals
        return None


_RFC3339 = re.compile(
    r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})",
)


@functools.lru_cache(maxsize=4096)
def parse_datetime(text: str) -> datetime | None:
    """``text`` as an RFC 3339 timestamp (the offset is mandatory), or None."""
    m = _RFC3339.fullmatch(text)
    if m is None:
        return None
    date, time, fraction, offset = m.groups()
    fraction = (fraction or "")[:7]  # datetime keeps microseconds; finer digits cannot matter here
    if offset in ("Z", "z"):
        offset = "+00:00"
    try:
        return datetime.fromisoformat(f"{date}T{time}{fraction}{offset}")
    except ValueError:
        return None
