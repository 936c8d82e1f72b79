"""The market node's web console: one self-contained page served at ``/``.

``index.html`` carries its own CSS and JavaScript (no external resources, no build step). It polls the
node's REST API (``/market/v1`` offers, nodes, agreements, statistics, and ``/packages``) every
1.5 seconds and redraws its tables in place, so it stays live without reloads. A constraint typed in
its filter box (or given as ``/?constraint=...``) filters the offers through the API. Data only ever
reaches the page through ``textContent``; the Content-Security-Policy below allows exactly the page's
own inline script and style (by hash) and requests to this node, so even a slip there could not run
injected code.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from importlib.resources import files

from aiohttp import web

PAGE = "index.html"


@functools.cache
def page_text() -> str:
    """The page's HTML (package data beside this module)."""
    return files(__name__).joinpath(PAGE).read_text(encoding="utf-8")


def _hashes(tag: str, text: str) -> str:
    # CSP hashes cover the exact text between the tags; the page must not contain the tag elsewhere.
    bodies = re.findall(rf"<{tag}>(.*?)</{tag}>", text, flags=re.DOTALL)
    return " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()}'" for body in bodies
    )


@functools.cache
def content_security_policy() -> str:
    text = page_text()
    return (
        f"default-src 'none'; script-src {_hashes('script', text)}; style-src {_hashes('style', text)}; "
        "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    )


async def console_page(request: web.Request) -> web.Response:
    """``GET /``: the console page."""
    return web.Response(
        text=page_text(),
        content_type="text/html",
        headers={
            "Content-Security-Policy": content_security_policy(),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-cache",
        },
    )
