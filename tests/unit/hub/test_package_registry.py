"""The package registry's store and rules, on a real temporary folder (no HTTP here)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from market.core.clock import FakeClock
from market.hub.registry import (
    CredentialsRequiredError,
    EmptyPackageError,
    HashMismatchError,
    InvalidHashError,
    InvalidTagError,
    PackageNotFoundError,
    PackageRegistry,
    PackageTooLargeError,
    UploadForbiddenError,
    check_upload_allowed,
    parse_digest,
    parse_tag,
)
from market.hub.registry_api import bearer_token, is_loopback
from market.hub.registry_client import RegistryClientError, registry_base, sha3_224_of

PAYLOAD = b"golem payload " * 100_000  # 1.4 MB: more than one write batch
DIGEST = hashlib.sha3_224(PAYLOAD).hexdigest()


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[PackageRegistry]:
    packages = PackageRegistry(tmp_path / "packages", max_package_bytes=2 * len(PAYLOAD), clock=FakeClock())
    yield packages
    packages.close()


async def store(
    registry: PackageRegistry,
    data: bytes,
    *,
    expected_digest: str | None = None,
    name: str | None = None,
    tags: tuple[str, ...] = (),
) -> tuple[str, bool]:
    """Upload ``data`` in 64 KiB pieces, as a socket would deliver it: (digest, created)."""
    upload = registry.begin_upload(expected_digest=expected_digest, name=name, tags=tags)
    async with upload:
        for start in range(0, len(data), 64 * 1024):
            await upload.write(data[start : start + 64 * 1024])
        package, created = await upload.finish()
    return package.digest, created


def leftovers(registry: PackageRegistry) -> list[str]:
    return sorted(p.name for p in registry.incoming.iterdir()) if registry.incoming.exists() else []


# --- syntax -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a" * 56, "a" * 56),
        ("ABCDEF" + "0" * 50, "abcdef" + "0" * 50),  # upper case is accepted and normalised
    ],
)
def test_digests_are_56_hex_digits(text: str, expected: str) -> None:
    assert parse_digest(text) == expected


@pytest.mark.parametrize(
    "text", ["", "a" * 55, "a" * 57, "g" * 56, "sha3:" + "a" * 56, "../" + "a" * 53, "a" * 55 + "\n"]
)
def test_anything_else_is_not_a_digest(text: str) -> None:
    with pytest.raises(InvalidHashError):
        parse_digest(text)


@pytest.mark.parametrize("tag", ["busybox", "golem/busybox:latest", "a.b_c-d/e:1.0.0-rc1"])
def test_valid_tags(tag: str) -> None:
    assert parse_tag(tag) == tag


@pytest.mark.parametrize("tag", ["", ":latest", "a b", "a:b:c", "-x", "a" * 129, "x:" + "1" * 129, "é"])
def test_invalid_tags(tag: str) -> None:
    with pytest.raises(InvalidTagError):
        parse_tag(tag)


# --- who may upload ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("configured", "presented", "loopback", "outcome"),
    [
        (None, None, True, None),
        (None, "anything", True, None),
        (None, None, False, UploadForbiddenError),  # no token configured: this host only
        (None, "anything", False, UploadForbiddenError),
        ("s3cret", "s3cret", False, None),
        ("s3cret", "s3cret", True, None),
        ("s3cret", None, True, CredentialsRequiredError),  # a token binds loopback too (proxies)
        ("s3cret", None, False, CredentialsRequiredError),
        ("s3cret", "wrong", True, UploadForbiddenError),
        ("s3cret", "s3cret ", False, UploadForbiddenError),
    ],
)
def test_upload_permission(
    configured: str | None, presented: str | None, loopback: bool, outcome: type[Exception] | None
) -> None:
    if outcome is None:
        check_upload_allowed(configured, presented, loopback)
    else:
        with pytest.raises(outcome):
            check_upload_allowed(configured, presented, loopback)


@pytest.mark.parametrize(
    ("header", "token"), [(None, None), ("Bearer abc", "abc"), ("bearer  abc ", "abc"), ("BEARER x.y", "x.y")]
)
def test_bearer_tokens(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


@pytest.mark.parametrize("header", ["Basic dXNlcjpw", "Bearer", "Bearer   ", "abc"])
def test_other_authorization_schemes_are_refused(header: str) -> None:
    with pytest.raises(CredentialsRequiredError):
        bearer_token(header)


@pytest.mark.parametrize(
    ("remote", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("192.0.2.2", False),
        ("::ffff:192.0.2.2", False),
        ("fd00::2", False),
        ("localhost", False),  # peers are addresses; a name is not trusted
        (None, False),
    ],
)
def test_loopback_peers(remote: str | None, loopback: bool) -> None:
    assert is_loopback(remote) is loopback


# --- the client's view of the market URL ------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "base"),
    [
        ("http://127.0.0.1:7470", "http://127.0.0.1:7470/"),
        ("http://127.0.0.1:7470/", "http://127.0.0.1:7470/"),
        ("ws://127.0.0.1:7470/ws", "http://127.0.0.1:7470/"),
        ("wss://market.example.org/ws", "https://market.example.org/"),
        ("https://market.example.org/golem", "https://market.example.org/golem"),
    ],
)
def test_registry_base(given: str, base: str) -> None:
    assert str(registry_base(given)) == base


@pytest.mark.parametrize("given", ["127.0.0.1:7470", "ftp://host/", "http://", "not a url"])
def test_registry_base_refuses_what_is_not_a_node_url(given: str) -> None:
    with pytest.raises(RegistryClientError):
        registry_base(given)


def test_client_hash_is_sha3_224_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "payload.bin"
    path.write_bytes(PAYLOAD)
    seen: list[tuple[str, int, int]] = []

    assert sha3_224_of(path, lambda *p: seen.append(p)) == DIGEST
    assert seen[-1] == ("hashing", len(PAYLOAD), len(PAYLOAD))


# --- storing ----------------------------------------------------------------------------------------


async def test_upload_is_stored_under_its_digest(registry: PackageRegistry) -> None:
    digest, created = await store(registry, PAYLOAD, name="payload.tar", tags=("golem/test:1",))

    assert (digest, created) == (DIGEST, True)
    package = registry.get(DIGEST)
    assert package.path.read_bytes() == PAYLOAD
    assert package.size == len(PAYLOAD)
    assert (package.name, package.tags) == ("payload.tar", ("golem/test:1",))
    assert package.uploaded_at == FakeClock().now()
    assert registry.resolve_tag("golem/test:1").digest == DIGEST
    assert [p.digest for p in registry.list()] == [DIGEST]
    assert leftovers(registry) == []


async def test_expected_digest_is_checked(registry: PackageRegistry) -> None:
    digest, created = await store(registry, PAYLOAD, expected_digest=DIGEST.upper())

    assert (digest, created) == (DIGEST, True)


async def test_same_bytes_again_change_nothing(registry: PackageRegistry) -> None:
    await store(registry, PAYLOAD, name="first.tar")
    mtime = registry.get(DIGEST).path.stat().st_mtime_ns

    digest, created = await store(registry, PAYLOAD, name="second.tar", expected_digest=DIGEST)

    assert (digest, created) == (DIGEST, False)
    package = registry.get(DIGEST)
    assert package.path.stat().st_mtime_ns == mtime
    assert package.name == "first.tar"
    assert len(registry.list()) == 1
    assert leftovers(registry) == []


async def test_a_tag_moves_to_the_latest_upload(registry: PackageRegistry) -> None:
    await store(registry, PAYLOAD, tags=("app:latest",))
    other, _ = await store(registry, b"another package", tags=("app:latest",))

    assert registry.resolve_tag("app:latest").digest == other
    assert registry.get(DIGEST).tags == ()


async def test_wrong_digest_stores_nothing(registry: PackageRegistry) -> None:
    wrong = hashlib.sha3_224(b"something else").hexdigest()

    with pytest.raises(HashMismatchError, match=f"hash to {DIGEST}, not to the expected {wrong}"):
        await store(registry, PAYLOAD, expected_digest=wrong, tags=("app:1",))

    assert registry.list() == []
    assert leftovers(registry) == []
    with pytest.raises(PackageNotFoundError):
        registry.get(DIGEST)
    with pytest.raises(PackageNotFoundError):
        registry.resolve_tag("app:1")


async def test_declared_size_over_the_limit_is_refused_before_any_byte(registry: PackageRegistry) -> None:
    with pytest.raises(PackageTooLargeError):
        registry.begin_upload(declared_size=registry.max_package_bytes + 1)

    assert not registry.root.exists()  # nothing was even created


async def test_streamed_size_over_the_limit_is_refused(registry: PackageRegistry) -> None:
    too_big = PAYLOAD * 2 + b"!"

    with pytest.raises(PackageTooLargeError):
        await store(registry, too_big)

    assert registry.list() == []
    assert leftovers(registry) == []


async def test_exactly_the_limit_is_accepted(registry: PackageRegistry) -> None:
    digest, created = await store(registry, PAYLOAD * 2)

    assert created and registry.get(digest).size == registry.max_package_bytes


async def test_empty_upload_is_refused(registry: PackageRegistry) -> None:
    with pytest.raises(EmptyPackageError):
        await store(registry, b"")

    assert registry.list() == []


async def test_bad_options_are_refused_before_anything_is_created(registry: PackageRegistry) -> None:
    with pytest.raises(InvalidHashError):
        registry.begin_upload(expected_digest="abc")
    with pytest.raises(InvalidTagError):
        registry.begin_upload(tags=("bad tag",))

    assert not registry.root.exists()


async def test_an_abandoned_upload_leaves_no_file(registry: PackageRegistry) -> None:
    with pytest.raises(ConnectionResetError):
        async with registry.begin_upload() as upload:
            await upload.write(PAYLOAD)
            raise ConnectionResetError("client went away")

    assert leftovers(registry) == []
    assert registry.list() == []


def test_an_empty_registry_reads_without_creating_anything(tmp_path: Path) -> None:
    registry = PackageRegistry(tmp_path / "nowhere", max_package_bytes=100)

    assert registry.list() == []
    with pytest.raises(PackageNotFoundError):
        registry.get(DIGEST)
    with pytest.raises(PackageNotFoundError):
        registry.resolve_tag("app:1")
    assert not (tmp_path / "nowhere").exists()


async def test_a_blob_without_index_row_is_still_served(registry: PackageRegistry) -> None:
    # What a crash between the rename and the index insert leaves behind.
    await store(registry, b"indexed")
    (registry.blobs / DIGEST).write_bytes(PAYLOAD)
    os.utime(registry.blobs / DIGEST)

    assert registry.get(DIGEST).size == len(PAYLOAD)
    assert DIGEST in [p.digest for p in registry.list()]
