"""The exe units' exception tree."""

from __future__ import annotations

from market.core.errors import GolemError


class ExeUnitError(GolemError):
    """Root of the exe units' errors.

    ``code`` is the stable name an error travels under between daemons (see
    :func:`market.client.relay.error_code`); the requestor's REST edge maps it to a status.
    """

    code = "exeunit_error"


class ExeScriptError(ExeUnitError):
    """An ExeScript does not parse, or names a command this exe unit does not know."""

    code = "bad_request"


class ActivityStateError(ExeUnitError):
    """A command is not allowed in the activity's current state (e.g. ``run`` before ``start``)."""

    code = "conflict"


class PackageError(ExeUnitError):
    """A package cannot be fetched, is malformed, or is too large."""

    code = "package_error"


class HashMismatchError(PackageError):
    """A package's content does not hash to the sha3-224 its reference names; it is never used."""


class TransferError(ExeUnitError):
    """A transfer failed or was refused (unknown scheme, path escaping the activity's folders...)."""

    code = "transfer_error"


class RuntimeUnavailableError(ExeUnitError):
    """The runtime's backend (the Docker engine, wasmtime) is not usable on this machine."""

    code = "runtime_unavailable"


class RuntimeCommandError(ExeUnitError):
    """The runtime could not carry out a command (as opposed to the command exiting non-zero)."""

    code = "runtime_error"


class ActivityNotFoundError(ExeUnitError):
    """No activity, batch or agreement with that id is known here."""

    code = "not_found"


class ForbiddenError(ExeUnitError):
    """The caller is not the requestor of the agreement the activity belongs to."""

    code = "forbidden"
