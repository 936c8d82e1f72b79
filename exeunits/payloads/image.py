"""Build a small ``vm`` package offline: a busybox image saved as a ``docker save`` archive.

The image is Debian's static busybox (``/usr/bin/busybox``) with applet links for the commands
tests and examples use, a minimal ``/etc/passwd``, a world-writable ``/tmp`` and the four volumes a
Golem ``vm`` image conventionally declares. It is imported into the local Docker engine (no registry
needed), saved, and named by the sha3-224 of the archive, exactly what a requestor would publish.

Use :func:`build_busybox_image` from tests and blueprints; ``python -m exeunits.payloads.image
OUT_DIR`` does the same from a shell and prints the hash and the archive's path. A build whose
archive and ``.sha3`` sidecar are already in ``OUT_DIR`` is reused, so a test session pays for it
once.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import tarfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import docker
import docker.errors

from exeunits.errors import PackageError, RuntimeUnavailableError
from exeunits.package import sha3_224_file

BUSYBOX = Path("/usr/bin/busybox")
APPLETS = (
    "sh", "echo", "cat", "ls", "sleep", "date", "cp", "mv", "rm", "mkdir", "wc", "head", "tail",
    "grep", "sed", "dd", "yes", "true", "false", "env", "id", "kill", "ps", "nc", "wget", "ping",
    "seq", "sha256sum", "md5sum", "touch", "uname", "hostname", "tr", "sort", "find",
    # Beyond the list above: what shell scripts in examples reach for without thinking.
    "ip", "timeout", "chmod", "stat", "basename", "dirname", "printf", "test", "[", "xargs", "awk",
    "tee", "cut", "uniq", "base64", "nproc", "pwd", "ln", "readlink", "tar", "gzip", "od", "which",
    "whoami", "sync", "truncate", "free", "sha3sum",
)  # fmt: skip
VOLUMES = ("/golem/input", "/golem/output", "/golem/work", "/golem/resource")
WORKDIR = "/golem/work"
ENV_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_RECIPE_VERSION = "1"
_MTIME = 1_700_000_000
"""A fixed timestamp for the root filesystem's entries, so the layer does not change per build."""
_CHUNK = 1024 * 1024

ClientFactory = Callable[[], Any]


@dataclass(frozen=True)
class BuiltImage:
    """A package ready to serve: the archive, its sha3-224 (lower-case hex), its tag, its size."""

    archive: Path
    sha3_224: str
    tag: str
    size: int


def build_busybox_image(
    out_dir: Path,
    *,
    tag: str = "golem-busybox:latest",
    extra_files: dict[str, bytes] | None = None,
    client_factory: ClientFactory = docker.from_env,
) -> BuiltImage:
    """Build (or reuse) the busybox package in ``out_dir`` and return where it is and its hash.

    ``extra_files`` maps absolute paths inside the image to their content (mode 0644), e.g. a data
    blob to give the package a realistic size. The image also stays in the local engine under
    ``tag``.
    """
    extras = _normalise_extra_files(extra_files or {})
    out_dir.mkdir(parents=True, exist_ok=True)
    archive = out_dir / f"{_file_stem(tag)}.tar"
    sidecar = archive.with_name(archive.name + ".sha3")
    recipe = _recipe_fingerprint(tag, extras)

    cached = _reuse(archive, sidecar, recipe)
    if cached is not None:
        return BuiltImage(archive, cached, tag, archive.stat().st_size)

    try:
        client = client_factory()
    except docker.errors.DockerException as exc:
        raise RuntimeUnavailableError(f"cannot reach the Docker engine: {exc}") from exc
    try:
        rootfs = archive.with_name(archive.name + ".rootfs")
        try:
            _write_rootfs(rootfs, extras)
            repository, _, version = _split_tag(tag)
            client.api.import_image_from_file(
                str(rootfs), repository=repository, tag=version, changes=_image_changes()
            )
        finally:
            rootfs.unlink(missing_ok=True)
        digest = _save(client.images.get(tag), archive)
    except docker.errors.DockerException as exc:
        raise PackageError(f"cannot build the busybox image {tag}: {exc}") from exc
    finally:
        client.close()
    sidecar.write_text(f"{digest}\n{recipe}\n")
    return BuiltImage(archive, digest, tag, archive.stat().st_size)


def _reuse(archive: Path, sidecar: Path, recipe: str) -> str | None:
    """The archive's hash if an earlier build of the same recipe is intact, else None."""
    if not (archive.is_file() and sidecar.is_file()):
        return None
    lines = sidecar.read_text().split()
    if len(lines) != 2 or lines[1] != recipe:
        return None
    # Re-hash rather than trust the sidecar: a half-written or edited archive must not be served.
    return lines[0] if sha3_224_file(archive) == lines[0] else None


def _normalise_extra_files(extra_files: dict[str, bytes]) -> dict[str, bytes]:
    normalised: dict[str, bytes] = {}
    for name, content in extra_files.items():
        path = PurePosixPath("/", name)
        if ".." in path.parts or path == PurePosixPath("/"):
            raise ValueError(f"extra file path {name!r} must name a file inside the image")
        normalised[str(path).lstrip("/")] = content
    return normalised


def _recipe_fingerprint(tag: str, extras: dict[str, bytes]) -> str:
    recipe = hashlib.sha3_224()
    recipe.update(f"{_RECIPE_VERSION}\0{tag}\0".encode())
    recipe.update(hashlib.sha3_224(BUSYBOX.read_bytes()).digest())
    for name in sorted(extras):
        recipe.update(name.encode() + b"\0" + hashlib.sha3_224(extras[name]).digest())
    return recipe.hexdigest()


def _file_stem(tag: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in tag)


def _split_tag(tag: str) -> tuple[str, str, str]:
    repository, sep, version = tag.rpartition(":")
    if not sep or "/" in version:
        return tag, "", "latest"
    return repository, sep, version


def _image_changes() -> list[str]:
    return [
        f"VOLUME {json.dumps(list(VOLUMES))}",
        f"WORKDIR {WORKDIR}",
        f"ENV PATH={ENV_PATH}",
        'CMD ["/bin/sh"]',
    ]


def _write_rootfs(path: Path, extras: dict[str, bytes]) -> None:
    with tarfile.open(path, "w") as tar:
        for directory, mode in _directories(extras):
            tar.addfile(_entry(directory, tarfile.DIRTYPE, mode))
        busybox = _entry("bin/busybox", tarfile.REGTYPE, 0o755)
        busybox.size = BUSYBOX.stat().st_size
        with BUSYBOX.open("rb") as f:
            tar.addfile(busybox, f)
        for applet in APPLETS:
            tar.addfile(_entry(f"bin/{applet}", tarfile.SYMTYPE, 0o777, link="busybox"))
        # Shebangs say /usr/bin/env more often than /bin/env.
        tar.addfile(_entry("usr/bin/env", tarfile.SYMTYPE, 0o777, link="/bin/busybox"))
        for name, content in _etc_files().items():
            _add_file(tar, name, content, 0o644)
        for name, content in sorted(extras.items()):
            _add_file(tar, name, content, 0o644)


def _directories(extras: dict[str, bytes]) -> Iterable[tuple[str, int]]:
    fixed = {"bin": 0o755, "etc": 0o755, "usr": 0o755, "usr/bin": 0o755, "tmp": 0o1777, "golem": 0o755}
    fixed.update({volume.lstrip("/"): 0o777 for volume in VOLUMES})
    parents = {str(parent) for name in extras for parent in PurePosixPath(name).parents if str(parent) != "."}
    for name in sorted(parents - fixed.keys()):
        fixed[name] = 0o755
    return sorted(fixed.items())


def _etc_files() -> dict[str, bytes]:
    return {
        "etc/passwd": b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        "etc/group": b"root:x:0:\nnogroup:x:65534:\n",
    }


def _entry(name: str, kind: bytes, mode: int, *, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = _MTIME
    info.linkname = link
    return info


def _add_file(tar: tarfile.TarFile, name: str, content: bytes, mode: int) -> None:
    info = _entry(name, tarfile.REGTYPE, mode)
    info.size = len(content)
    tar.addfile(info, io.BytesIO(content))


def _save(image: Any, archive: Path) -> str:
    digest = hashlib.sha3_224()
    partial = archive.with_name(archive.name + ".part")
    try:
        with partial.open("wb") as f:
            for chunk in image.save(chunk_size=_CHUNK, named=True):
                digest.update(chunk)
                f.write(chunk)
        os.replace(partial, archive)
    finally:
        partial.unlink(missing_ok=True)
    return digest.hexdigest()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m exeunits.payloads.image",
        description="Build the busybox test package and print its sha3-224 and path.",
    )
    parser.add_argument("out_dir", type=Path, help="where to write the archive (reused if current)")
    parser.add_argument("--tag", default="golem-busybox:latest", help="image tag (default: %(default)s)")
    args = parser.parse_args(argv)
    built = build_busybox_image(args.out_dir, tag=args.tag)
    print(f"{built.sha3_224} {built.archive}")


if __name__ == "__main__":
    main()
