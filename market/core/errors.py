"""The project's exception root and the kernel's own errors.

Every package roots its exception tree in :class:`GolemError`, so a caller can catch "anything this
project raised on purpose" in one clause while foreign errors (aiohttp, web3, docker) are translated
at the edge where they occur.
"""

from __future__ import annotations


class GolemError(Exception):
    """Root of every error this project raises on purpose."""


class ConfigError(GolemError):
    """A configuration source (TOML file, environment, flag) holds a value that cannot be used."""


class IdentityError(GolemError):
    """A keystore is missing, unreadable, or its password is wrong."""


class SignatureError(GolemError):
    """A signature is malformed or was not made by the key it claims."""


class InvalidTransition(GolemError):
    """A state machine was asked to take an edge its transition table does not allow."""

    def __init__(self, kind: str, current: str, target: str) -> None:
        super().__init__(f"{kind} cannot go from {current} to {target}")
        self.kind = kind
        self.current = current
        self.target = target


class StorageError(GolemError):
    """The SQLite store could not be opened or migrated."""
