"""Transfers: container paths confined to volumes, http(s) both ways against a real server."""

from __future__ import annotations

from pathlib import Path

import pytest

from exeunits.errors import TransferError
from exeunits.transfer import TransferService, container_path
from tests.exeunits.conftest import FileServer


@pytest.fixture
def volumes(tmp_path: Path) -> dict[str, Path]:
    found = {"/golem/input": tmp_path / "in", "/golem/output": tmp_path / "out", "/golem": tmp_path / "golem"}
    for folder in found.values():
        folder.mkdir()
    return found


def test_container_paths_resolve_to_the_deepest_volume(volumes: dict[str, Path]) -> None:
    assert (
        container_path("container:/golem/input/a/b.txt", volumes)
        == (volumes["/golem/input"] / "a/b.txt").resolve()
    )
    assert (
        container_path("container:/golem/other.txt", volumes) == (volumes["/golem"] / "other.txt").resolve()
    )
    assert container_path("container:/golem/input/./x/../y", volumes).name == "y"


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("container:/etc/passwd", "not inside a volume"),
        ("container:/golem/input/../../etc/passwd", "not inside a volume"),
        ("container:relative/path", "absolute"),
        ("container:/golem/input/\x00x", "NUL"),
    ],
)
def test_escapes_are_refused(volumes: dict[str, Path], url: str, fragment: str) -> None:
    with pytest.raises(TransferError, match=fragment):
        container_path(url, volumes)


def test_symlink_out_of_a_volume_is_refused(volumes: dict[str, Path], tmp_path: Path) -> None:
    (volumes["/golem/input"] / "link").symlink_to("/etc")
    with pytest.raises(TransferError, match="outside its volume"):
        container_path("container:/golem/input/link/passwd", volumes)


async def test_http_download_and_upload(volumes: dict[str, Path], file_server: FileServer) -> None:
    file_server.files["data.bin"] = b"\x01\x02" * 1000
    service = TransferService()
    await service.transfer(f"{file_server.url}/data.bin", "container:/golem/input/data.bin", volumes)
    assert (volumes["/golem/input"] / "data.bin").read_bytes() == b"\x01\x02" * 1000
    (volumes["/golem/output"] / "result.txt").write_text("done")
    await service.transfer("container:/golem/output/result.txt", f"{file_server.url}/result.txt", volumes)
    assert file_server.uploads["result.txt"] == b"done"


async def test_failures_leave_nothing_behind(volumes: dict[str, Path], file_server: FileServer) -> None:
    service = TransferService()
    with pytest.raises(TransferError, match="HTTP 404"):
        await service.transfer(f"{file_server.url}/missing", "container:/golem/input/x", volumes)
    assert list(volumes["/golem/input"].iterdir()) == []
    with pytest.raises(TransferError, match="no file"):
        await service.transfer("container:/golem/output/none", f"{file_server.url}/x", volumes)
    with pytest.raises(TransferError, match="file:// URLs are not allowed"):
        await service.transfer("file:///etc/passwd", "container:/golem/input/p", volumes)
    with pytest.raises(TransferError, match="gftp:// transfers need a daemon"):
        await service.transfer("gftp://0xabc/h", "container:/golem/input/p", volumes)
    with pytest.raises(TransferError, match="unsupported"):
        await service.transfer("ftp://x/y", "container:/golem/input/p", volumes)
    with pytest.raises(TransferError, match="one side"):
        await service.transfer(f"{file_server.url}/a", f"{file_server.url}/b", volumes)
    assert list(volumes["/golem/input"].iterdir()) == []


async def test_gftp_goes_through_the_resolver(volumes: dict[str, Path]) -> None:
    class Resolver:
        def __init__(self) -> None:
            self.sent: list[tuple[str, bytes]] = []

        async def download(self, url: str, dest: Path) -> None:
            dest.write_bytes(url.encode())

        async def upload(self, src: Path, url: str) -> None:
            self.sent.append((url, src.read_bytes()))

    resolver = Resolver()
    service = TransferService(gftp=resolver)
    await service.transfer("gftp://0xabc/h1", "container:/golem/input/f", volumes)
    assert (volumes["/golem/input"] / "f").read_bytes() == b"gftp://0xabc/h1"
    await service.transfer("container:/golem/input/f", "gftp://0xabc/h2", volumes)
    assert resolver.sent == [("gftp://0xabc/h2", b"gftp://0xabc/h1")]
