"""The package registry's HTTP edge: uploads, downloads and yapapi's image query.

Routes live outside ``/market/v1`` because their paths are fixed by their clients: yapapi asks
``{repository_url}/v1/image/info?hash=...&count=true`` and downloads whatever URL the answer names,
and providers fetch ``/packages/<hash>`` (HEAD, GET, byte ranges for resumed downloads). They are
mounted as two sub-applications (``/packages`` and ``/v1``) sharing one error middleware; the market
node's OpenAPI document lists them with their own server (``/``).

Who may upload: with an upload token configured (``GOLEM_MARKET_UPLOAD_TOKEN``, or ``upload_token`` in
the ``[market]`` table), every upload must send ``Authorization: Bearer <token>`` (401 without one, 403
with a wrong one). Without a token, only uploads from a loopback address are accepted (403 otherwise).
Behind a reverse proxy on the same host every client looks local, so configure a token there. Reading
is open to everyone, like the offers: a provider must be able to fetch what a demand names.

The download URLs the registry hands out are built from ``public_url`` when configured
(``GOLEM_MARKET_PUBLIC_URL``, e.g. ``https://market.example.org``), otherwise from the scheme and
``Host`` of the request being answered: right for a client on this host or one that reached the node
by the name providers use too.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import ClientPayloadError, web
from aiohttp.typedefs import Handler
from pydantic import BaseModel
from yarl import URL

from market.core.logging import correlated
from market.hub.openapi import Route
from market.hub.registry import (
    CredentialsRequiredError,
    EmptyPackageError,
    HashMismatchError,
    InvalidHashError,
    InvalidTagError,
    PackageNotFoundError,
    PackageRegistry,
    PackageTooLargeError,
    RegistryError,
    StoredPackage,
    UploadForbiddenError,
    check_upload_allowed,
    parse_digest,
)
from market.hub.registry_models import ImageInfo, ImageInfoQuery, PackageInfo, UploadQuery
from market.rest import QueryError, error_response, http_exception_response, parse_query

log = logging.getLogger(__name__)

PACKAGES_PREFIX = "/packages"
IMAGE_INFO_PREFIX = "/v1"
READ_CHUNK_BYTES = 1024 * 1024
IMMUTABLE = "public, max-age=31536000, immutable"


class BadRegistryRequestError(RegistryError):
    """A query or body the registry cannot use (unknown parameter, both hash and tag, a cut upload)."""


HTTP_STATUS: dict[type[RegistryError], int] = {
    BadRegistryRequestError: 400,
    InvalidHashError: 400,
    InvalidTagError: 400,
    HashMismatchError: 400,
    EmptyPackageError: 400,
    CredentialsRequiredError: 401,
    UploadForbiddenError: 403,
    PackageNotFoundError: 404,
    PackageTooLargeError: 413,
}
"""The HTTP status of each registry error; the edge's only mapping of them."""


@dataclass(frozen=True)
class RegistrySettings:
    """What the HTTP edge needs beyond the store: who may upload, and the node's public address."""

    upload_token: str | None = None
    public_url: str | None = None


REGISTRY_KEY: web.AppKey[PackageRegistry] = web.AppKey("package_registry")
SETTINGS_KEY: web.AppKey[RegistrySettings] = web.AppKey("registry_settings")

_Q = TypeVar("_Q", bound=BaseModel)


# --- helpers ----------------------------------------------------------------------------------------


def _query(request: web.Request, model: type[_Q]) -> _Q:
    try:
        return parse_query(request, model)
    except QueryError as exc:
        raise BadRegistryRequestError(str(exc)) from exc


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header; None when there is no such header."""
    if authorization is None:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise CredentialsRequiredError("the Authorization header must be 'Bearer <token>'")
    return token.strip()


def is_loopback(remote: str | None) -> bool:
    """Whether a peer address is this host's loopback (IPv4-mapped IPv6 included)."""
    if remote is None:
        return False
    try:
        address = ipaddress.ip_address(remote.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def base_url(request: web.Request) -> URL:
    """Where clients reach this node: the configured public URL, else what this request was sent to."""
    configured = request.app[SETTINGS_KEY].public_url
    try:
        return URL(configured.rstrip("/") if configured else f"{request.scheme}://{request.host}")
    except ValueError as exc:
        raise BadRegistryRequestError(f"cannot build a URL from the request's Host: {exc}") from exc


def package_url(request: web.Request, digest: str) -> str:
    return str(base_url(request) / PACKAGES_PREFIX.strip("/") / digest)


def package_info(request: web.Request, package: StoredPackage, created: bool | None = None) -> PackageInfo:
    url = package_url(request, package.digest)
    return PackageInfo(
        hash=package.digest,
        size=package.size,
        url=url,
        task_package=f"hash:sha3:{package.digest}:{url}",
        name=package.name,
        uploaded_at=package.uploaded_at,
        tags=list(package.tags),
        created=created,
    )


def _json(body: BaseModel | Sequence[BaseModel], status: int = 200) -> web.Response:
    if isinstance(body, BaseModel):
        data: Any = body.model_dump(mode="json", by_alias=True)
    else:
        data = [item.model_dump(mode="json", by_alias=True) for item in body]
    return web.json_response(data, status=status)


def _unsatisfiable_range(request: web.Request, size: int) -> web.Response | None:
    """A JSON 416 for a ``Range`` the file cannot satisfy; None when the file response may proceed.

    aiohttp's file response answers these with an empty 416; checking first gives the registry's
    usual error body. With ``If-Range`` the file response decides whether the range applies at all.
    """
    if "Range" not in request.headers or request.if_range is not None:
        return None
    headers = {"Content-Range": f"bytes */{size}"}
    try:
        wanted = request.http_range
    except ValueError:
        return error_response(
            416, f"unsupported Range {request.headers['Range'][:80]!r}: one byte range is supported", headers
        )
    start = wanted.start
    if start is not None and start >= 0 and start >= size:
        return error_response(416, f"the range starts at {start}, past the package's {size} bytes", headers)
    return None


# --- handlers ---------------------------------------------------------------------------------------


async def upload_package(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS_KEY]
    check_upload_allowed(
        settings.upload_token, bearer_token(request.headers.get("Authorization")), is_loopback(request.remote)
    )
    query = _query(request, UploadQuery)
    upload = request.app[REGISTRY_KEY].begin_upload(
        expected_digest=query.hash,
        declared_size=request.content_length,
        name=query.name,
        tags=(query.tag,) if query.tag else (),
    )
    async with upload:
        try:
            async for chunk in request.content.iter_chunked(READ_CHUNK_BYTES):
                await upload.write(chunk)
        except (ClientPayloadError, ConnectionError) as exc:
            raise BadRegistryRequestError(f"the upload was cut off after {upload.size} bytes: {exc}") from exc
        package, created = await upload.finish()
    log.info(
        "package %s (%d bytes) %s by %s",
        package.digest,
        package.size,
        "uploaded" if created else "uploaded again",
        request.remote,
    )
    return _json(package_info(request, package, created), status=201 if created else 200)


async def list_packages(request: web.Request) -> web.Response:
    return _json([package_info(request, p) for p in request.app[REGISTRY_KEY].list()])


async def download_package(request: web.Request) -> web.StreamResponse:
    package = request.app[REGISTRY_KEY].get(parse_digest(request.match_info["hash"]))
    refused = _unsatisfiable_range(request, package.size)
    if refused is not None:
        return refused
    return web.FileResponse(
        package.path,
        headers={
            "Content-Type": "application/octet-stream",
            "Cache-Control": IMMUTABLE,
            "Content-Disposition": f'attachment; filename="{package.digest}"',
        },
    )


async def image_info(request: web.Request) -> web.Response:
    query = _query(request, ImageInfoQuery)
    if (query.hash is None) == (query.tag is None):
        raise BadRegistryRequestError("give exactly one of the query parameters 'hash' and 'tag'")
    registry = request.app[REGISTRY_KEY]
    package = registry.get(query.hash) if query.hash is not None else registry.resolve_tag(str(query.tag))
    url = URL(package_url(request, package.digest))
    return _json(
        ImageInfo(
            http=str(url.with_scheme("http")),
            https=str(url.with_scheme("https")),
            sha3=package.digest,
            size=package.size,
        )
    )


ROUTES: tuple[Route, ...] = (
    Route(
        "POST",
        "/packages",
        "uploadPackage",
        "Store a package (streamed body), named by its SHA3-224 digest",
        upload_package,
        PackageInfo,
        query=UploadQuery,
        body=bytes,
        body_content_type="application/octet-stream",
        success_status=201,
        also=(200,),
        errors=(400, 401, 403, 413),
        server="/",
        description=(
            "The body is the package's bytes (a `docker save` archive, a WASM module or zip). 201 when "
            "stored, 200 when the registry already held these bytes (nothing changes). Needs "
            "`Authorization: Bearer <token>` when the node has an upload token; without one, only "
            "uploads from loopback are accepted. Larger than the node's limit: 413."
        ),
    ),
    Route(
        "GET",
        "/packages",
        "listPackages",
        "List stored packages",
        list_packages,
        list[PackageInfo],
        server="/",
    ),
    Route(
        "GET",
        "/packages/{hash}",
        "downloadPackage",
        "Download a package; a single byte range is supported",
        download_package,
        bytes,
        content_type="application/octet-stream",
        also=(206,),
        errors=(400, 404, 416),
        server="/",
        description="`hash` is the SHA3-224 hex digest. A `Range` past the end is answered 416.",
    ),
    Route(
        "HEAD",
        "/packages/{hash}",
        "headPackage",
        "Whether a package is stored, and its size (Content-Length)",
        download_package,
        None,
        errors=(400, 404),
        server="/",
    ),
    Route(
        "GET",
        "/v1/image/info",
        "getImageInfo",
        "Resolve an image by hash or tag, as yapapi's vm.repo() asks a Golem registry",
        image_info,
        ImageInfo,
        query=ImageInfoQuery,
        errors=(400, 404),
        server="/",
        description=(
            "Exactly one of `hash` and `tag`. yapapi sends `count=true` (or `dev=true`) too. The answer's "
            "`http` URL is this node's `/packages/<hash>`."
        ),
    ),
)


# --- errors and assembly ----------------------------------------------------------------------------


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every failure into a JSON ``{"message": ...}`` with the status its kind calls for."""
    with correlated(f"registry:{secrets.token_hex(4)}"):
        try:
            return await handler(request)
        except RegistryError as exc:
            status = next((s for kind, s in HTTP_STATUS.items() if isinstance(exc, kind)), 500)
            if status == 500:
                log.error("%s %s failed: %s", request.method, request.path, exc)
                return error_response(500, "internal error")
            headers = {"WWW-Authenticate": 'Bearer realm="golem-market"'} if status == 401 else None
            return error_response(status, str(exc), headers)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return http_exception_response(exc)
        except Exception:
            log.exception("%s %s failed", request.method, request.path)
            return error_response(500, "internal error")


def build_registry_apps(registry: PackageRegistry, settings: RegistrySettings) -> dict[str, web.Application]:
    """The registry's sub-applications by mount prefix; mount each with ``app.add_subapp``."""
    apps: dict[str, web.Application] = {}
    for prefix in (PACKAGES_PREFIX, IMAGE_INFO_PREFIX):
        app = web.Application(middlewares=[error_middleware])
        app[REGISTRY_KEY] = registry
        app[SETTINGS_KEY] = settings
        apps[prefix] = app
    for route in ROUTES:
        prefix = next(p for p in apps if route.path == p or route.path.startswith(p + "/"))
        apps[prefix].router.add_route(
            route.method, route.path[len(prefix) :], route.handler, name=route.operation_id
        )
    return apps
