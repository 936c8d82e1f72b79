"""The package image cache's bookkeeping: least recently used first, never what a live activity holds."""

from __future__ import annotations

import pytest

from exeunits.runtime.docker import ImageCache

NEEDS_DOCKER = False  # pure: runs even where the engine is absent


def cache_of(capacity: int, *entries: tuple[str, str, int]) -> ImageCache:
    cache = ImageCache(capacity)
    for package_hash, image_id, size in entries:
        cache.add(package_hash, image_id, size)
    return cache


@pytest.mark.parametrize(
    ("capacity", "held", "touched", "victims"),
    [
        (300, [], [], []),  # fits
        (250, [], [], ["a"]),  # oldest first
        (150, [], [], ["a", "b"]),
        (150, ["a"], [], ["b", "c"]),  # held ones are skipped, even if that is not enough
        (250, [], ["a"], ["b"]),  # using an image makes it the most recent
        (0, ["a", "b", "c"], [], []),  # everything held: nothing to do
    ],
)
def test_victims(capacity: int, held: list[str], touched: list[str], victims: list[str]) -> None:
    cache = cache_of(capacity, ("a", "id-a", 100), ("b", "id-b", 100), ("c", "id-c", 100))
    for package_hash in held + touched:
        cache.hold(package_hash)
    for package_hash in touched:
        cache.release(package_hash)
    assert cache.victims() == victims


def test_two_packages_of_one_image_count_once_and_share_its_hold() -> None:
    # The same image saved twice gives two archives (two hashes) and one image id.
    cache = cache_of(100, ("a", "same", 100), ("b", "same", 100), ("c", "other", 100))
    assert cache.total_bytes() == 200
    assert cache.victims() == ["a", "b"]
    cache.hold("b")
    assert cache.victims() == ["c"]


def test_release_and_forget() -> None:
    cache = cache_of(0, ("a", "id-a", 10))
    cache.hold("a")
    cache.hold("a")
    cache.release("a")
    assert cache.victims() == []
    cache.release("a")
    assert cache.victims() == ["a"]
    cache.forget("a")
    assert "a" not in cache and cache.image_id("a") is None and cache.victims() == []
