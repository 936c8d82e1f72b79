"""Shared by the end-to-end tests: the busybox payload image, built once (needs a Docker engine)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def busybox(tmp_path_factory: pytest.TempPathFactory) -> object:
    docker = pytest.importorskip("docker")
    try:
        docker.from_env().ping()
    except Exception as exc:  # CI always has an engine; a laptop without one skips with the reason
        pytest.skip(f"Docker engine not reachable: {exc}")
    from exeunits.payloads.image import build_busybox_image

    return build_busybox_image(tmp_path_factory.mktemp("images"))
