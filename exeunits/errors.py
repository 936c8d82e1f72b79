"""The exe units' exception tree."""

from __future__ import annotations

from market.core.errors import GolemError


class ExeUnitError(GolemError):
    """Root of the exe units' errors."""


class ExeScriptError(ExeUnitError):
    """An ExeScript does not parse, or names a command this exe unit does not know."""


class ActivityStateError(ExeUnitError):
    """A command is not allowed in the activity's current state (e.g. ``run`` before ``start``)."""


class PackageError(ExeUnitError):
    """A package cannot be fetched, is malformed, or is too large."""


class HashMismatchError(PackageError):
    """A package's content does not hash to the sha3-224 its reference names; it is never used."""


class TransferError(ExeUnitError):
    """A transfer failed or was refused (unknown scheme, path escaping the activity's folders...)."""


class RuntimeUnavailableError(ExeUnitError):
    """The runtime's backend (the Docker engine, wasmtime) is not usable on this machine."""


class RuntimeCommandError(ExeUnitError):
    """The runtime could not carry out a command (as opposed to the command exiting non-zero)."""
