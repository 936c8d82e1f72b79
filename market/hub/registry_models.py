"""Wire models of the market node's package registry (``/packages``, ``/v1/image/info``).

Shapes only: :mod:`market.hub.registry_api` fills them, :mod:`market.hub.openapi` documents them.
:class:`ImageInfo` is the answer yapapi's ``vm.repo(image_hash=...)`` reads from a Golem registry
(``resolve_package_url`` in ``yapapi/payload/package.py``), so its four field names are fixed.
"""

from __future__ import annotations

from pydantic import Field

from market.core.wire import RequestModel, WireModel
from market.hub.api_models import Timestamp


class UploadQuery(RequestModel):
    """Options of an upload."""

    hash: str | None = Field(
        default=None,
        description=(
            "The SHA3-224 hex digest the uploader computed. When given, bytes that hash otherwise are "
            "refused (400) and nothing is stored; when absent, the registry names the package by the "
            "digest it computes."
        ),
    )
    tag: str | None = Field(
        default=None,
        description="A tag (`name[:version]`) to point at the package, as `vm.repo(image_tag=...)` resolves.",
    )
    name: str | None = Field(
        default=None, max_length=255, description="The uploaded file's name, for listings."
    )


class ImageInfoQuery(RequestModel):
    """yapapi's image query: exactly one of `hash` and `tag`; `count` and `dev` are accepted and ignored."""

    hash: str | None = Field(default=None, description="SHA3-224 hex digest of the package.")
    tag: str | None = Field(default=None, description="A tag given at upload.")
    count: str | None = Field(default=None, description="yapapi's usage-count flag; ignored.")
    dev: str | None = Field(default=None, description="yapapi's development-mode flag; ignored.")


class PackageInfo(WireModel):
    """A stored package and where to download it."""

    hash: str = Field(description="SHA3-224 hex digest of the package's bytes.")
    size: int = Field(description="Size in bytes.")
    url: str = Field(description="Where this node serves the package (GET, HEAD, byte ranges).")
    task_package: str = Field(description="The `hash:sha3:<hex>:<url>` form a demand names the package by.")
    name: str | None = Field(default=None, description="The file name given at upload, if any.")
    uploaded_at: Timestamp | None = None
    tags: list[str] = Field(default_factory=list)
    created: bool | None = Field(
        default=None, description="On upload only: false when the registry already held these bytes."
    )


class ImageInfo(WireModel):
    """What a Golem registry answers to `/v1/image/info`; yapapi reads exactly these fields."""

    http: str = Field(description="Download URL over HTTP (what yapapi uses by default).")
    https: str = Field(description="The same path over HTTPS (`vm.repo(image_use_https=True)`).")
    sha3: str = Field(
        description="SHA3-224 hex digest; yapapi puts this, not the one it asked for, in the demand."
    )
    size: int = Field(description="Size in bytes.")
