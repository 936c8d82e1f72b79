"""``gftp://`` on the requestor's side: the files a yapapi script shares with its providers.

* :mod:`requestor.gftp.share`: :class:`FileShare`, the daemon's table of published files and receive
  slots, served to providers over the market relay (protocol in :mod:`exeunits.gftp`).
* :mod:`requestor.gftp.api`: ``/gftp-api/v1``, the loopback API the ``gftp`` process calls.
* :mod:`requestor.gftp.cli`: the ``gftp`` command yapapi starts (``gftp server``, JSON-RPC on stdio).

The names below are loaded on first use, so that the ``gftp`` command (which needs none of them)
starts in a fraction of the time the daemon's imports take.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from requestor.gftp.api import build_gftp_api
    from requestor.gftp.share import (
        FileShare,
        InvalidPathError,
        ShareError,
        ShareForbiddenError,
        UnknownUrlError,
        UploadIntegrityError,
    )

_HOMES = {
    "build_gftp_api": "requestor.gftp.api",
    "FileShare": "requestor.gftp.share",
    "InvalidPathError": "requestor.gftp.share",
    "ShareError": "requestor.gftp.share",
    "ShareForbiddenError": "requestor.gftp.share",
    "UnknownUrlError": "requestor.gftp.share",
    "UploadIntegrityError": "requestor.gftp.share",
}

__all__ = [
    "FileShare",
    "InvalidPathError",
    "ShareError",
    "ShareForbiddenError",
    "UnknownUrlError",
    "UploadIntegrityError",
    "build_gftp_api",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
