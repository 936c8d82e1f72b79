"""The Mandelbrot blueprint's pure parts: how the image is cut into tiles, the reference renderer,
the tiles' file format, and the PNG the tiles are merged into.

Providers render tiles with ``blueprints/payloads/mandel.awk`` (busybox awk, inside the payload
image); :func:`render_tile` is the same algorithm in Python: the same double-precision operations
in the same order, so a tile rendered either way has the same bytes (a unit test checks it against
the host's busybox). That lets the blueprint check its result against a local render, and lets the
benchmark compare the network's wall time with the same work in one local process.

A tile is a plain-text PGM (``P2``): the escape iteration count of each pixel, one image row per
line, ``maxval`` = the iteration limit. Text, because busybox awk cannot write a NUL byte. The PNG
is written with ``zlib`` and ``struct`` (8-bit RGB, no interlace): a few dozen lines, no image
library to install on the requestor's machine. :func:`decode_png` reads it back (any filter type),
for tests.

``python -m blueprints.fractal --size 240x160 --max-iter 256 --out local.png`` renders the whole
image locally (the benchmark's baseline).
"""

from __future__ import annotations

import argparse
import struct
import sys
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

RENDERER = Path(__file__).resolve().parent / "payloads" / "mandel.awk"
"""The renderer's source in the repo; the payload image holds it at :data:`RENDERER_IN_IMAGE`."""
RENDERER_IN_IMAGE = "/golem/bin/mandel.awk"
"""Outside the image's volumes, which would mask it (a volume starts empty on a provider)."""
MAX_ITER_LIMIT = 65535
"""The largest iteration limit a PGM's maxval can carry."""
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class FractalError(ValueError):
    """Bad parameters, or a tile or PNG that is not what it should be."""


@dataclass(frozen=True)
class Tile:
    """Pixels ``[x0, x1) x [y0, y1)`` of the image; ``index`` orders tiles top to bottom."""

    index: int
    x0: int
    x1: int
    y0: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    def awk_command(self, width: int, height: int, max_iter: int, renderer: str = RENDERER_IN_IMAGE) -> str:
        """The shell command that renders this tile with busybox awk to stdout."""
        return (
            f"awk -f {renderer} -v w={width} -v h={height} -v x0={self.x0} -v x1={self.x1}"
            f" -v y0={self.y0} -v y1={self.y1} -v maxit={max_iter}"
        )

    def __str__(self) -> str:
        return f"tile {self.index} (rows {self.y0}-{self.y1 - 1})"


def parse_size(text: str) -> tuple[int, int]:
    """``"240x160"`` as ``(240, 160)``."""
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise FractalError(f"size must be WIDTHxHEIGHT, e.g. 240x160, not {text!r}") from None
    if not (1 <= width <= 10_000 and 1 <= height <= 10_000):
        raise FractalError(f"width and height must be 1..10000, not {text!r}")
    return width, height


def split(width: int, height: int, tiles: int) -> list[Tile]:
    """The image cut into ``tiles`` horizontal bands of (nearly) equal height, top to bottom.

    Bands rather than a grid: each tile is then a run of whole rows, which the merge copies as is.
    """
    if not 1 <= tiles <= height:
        raise FractalError(f"the number of tiles must be 1..{height} (the image's height), not {tiles}")
    base, extra = divmod(height, tiles)
    found: list[Tile] = []
    y = 0
    for index in range(tiles):
        rows = base + (1 if index < extra else 0)
        found.append(Tile(index, 0, width, y, y + rows))
        y += rows
    return found


def check_max_iter(max_iter: int) -> int:
    if not 1 <= max_iter <= MAX_ITER_LIMIT:
        raise FractalError(f"the iteration limit must be 1..{MAX_ITER_LIMIT}, not {max_iter}")
    return max_iter


def render_tile(width: int, height: int, tile: Tile, max_iter: int) -> bytes:
    """The tile as ``mandel.awk`` writes it, computed here (see the module's docstring)."""
    lines = [f"P2\n{tile.width} {tile.height}\n{max_iter}\n"]
    for py in range(tile.y0, tile.y1):
        cy = 1.0 - 2.0 * (py + 0.5) / height
        row = []
        for px in range(tile.x0, tile.x1):
            cx = -2.25 + 3.0 * (px + 0.5) / width
            zx = zy = 0.0
            i = 0
            while i < max_iter:
                x2 = zx * zx
                y2 = zy * zy
                if x2 + y2 > 4:
                    break
                zy = 2 * zx * zy + cy
                zx = x2 - y2 + cx
                i += 1
            row.append(str(i))
        lines.append(" ".join(row) + "\n")
    return "".join(lines).encode()


def parse_tile(data: bytes, tile: Tile, max_iter: int) -> list[list[int]]:
    """The iteration counts in a rendered tile, row by row; FractalError unless it is exactly the
    tile asked for (format, size, maxval, every value in range)."""
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise FractalError(f"{tile}: not a text PGM") from None
    header = text.split(None, 4)
    if len(header) < 4 or header[0] != "P2":
        raise FractalError(f"{tile}: not a P2 PGM (starts {text[:20]!r})")
    try:
        size = (int(header[1]), int(header[2]))
        maxval = int(header[3])
        values = [int(v) for v in header[4].split()] if len(header) == 5 else []
    except ValueError:
        raise FractalError(f"{tile}: the PGM holds something else than numbers") from None
    if size != (tile.width, tile.height) or maxval != max_iter:
        raise FractalError(
            f"{tile}: expected {tile.width}x{tile.height} with maxval {max_iter},"
            f" got {size[0]}x{size[1]} with maxval {maxval}"
        )
    if len(values) != tile.width * tile.height:
        raise FractalError(f"{tile}: {len(values)} pixels instead of {tile.width * tile.height}")
    if any(not 0 <= v <= max_iter for v in values):
        raise FractalError(f"{tile}: a pixel outside 0..{max_iter}")
    return [values[r * tile.width : (r + 1) * tile.width] for r in range(tile.height)]


def colour(count: int, max_iter: int) -> tuple[int, int, int]:
    """A pixel's colour: black inside the set, outside a dark-blue-to-gold ramp by escape time
    (on the square root of the count's share of the limit, so the many quick escapes differ)."""
    if count >= max_iter:
        return (0, 0, 0)
    t = (count / max_iter) ** 0.5
    return (
        int(9 * (1 - t) * t * t * t * 255),
        int(15 * (1 - t) * (1 - t) * t * t * 255),
        int(8.5 * (1 - t) * (1 - t) * (1 - t) * t * 255),
    )


def merge(width: int, height: int, tiles: Mapping[Tile, Sequence[Sequence[int]]], max_iter: int) -> bytes:
    """The whole image as raw RGB rows from every tile's counts; FractalError if a pixel is missing."""
    rows: list[Sequence[int] | None] = [None] * height
    for tile, counts in tiles.items():
        for offset, counts_row in enumerate(counts):
            if tile.x0 != 0 or len(counts_row) != width:
                raise FractalError(f"{tile} does not span the image's width")
            rows[tile.y0 + offset] = counts_row
    missing = [y for y, row in enumerate(rows) if row is None]
    if missing:
        raise FractalError(f"rows {missing[0]}..{missing[-1]} are missing ({len(missing)} rows)")
    palette = [bytes(colour(n, max_iter)) for n in range(max_iter + 1)]
    return b"".join(palette[n] for row in rows if row is not None for n in row)


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def encode_png(width: int, height: int, rgb: bytes) -> bytes:
    """An 8-bit RGB PNG of raw RGB rows (filter type 0 on every row, best compression)."""
    if len(rgb) != width * height * 3:
        raise FractalError(f"{len(rgb)} bytes of RGB for a {width}x{height} image")
    stride = width * 3
    raw = b"".join(b"\0" + rgb[y * stride : (y + 1) * stride] for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        PNG_SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw, 9))
        + _chunk(b"IEND", b"")
    )


def decode_png(data: bytes) -> tuple[int, int, bytes]:
    """Width, height and raw RGB rows of an 8-bit RGB non-interlaced PNG; FractalError otherwise.

    Every chunk's CRC is checked and all five row filters are undone, so this reads any such PNG,
    not only ours.
    """
    if not data.startswith(PNG_SIGNATURE):
        raise FractalError("not a PNG (bad signature)")
    pos, header, idat = len(PNG_SIGNATURE), b"", bytearray()
    while True:
        if pos + 8 > len(data):
            raise FractalError("truncated PNG: no IEND chunk")
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length] or b"\0\0\0\0")
        if len(body) != length or zlib.crc32(kind + body) != crc:
            raise FractalError(f"PNG chunk {kind!r} is truncated or fails its CRC")
        pos += 12 + length
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    if len(header) != 13:
        raise FractalError("PNG without a valid IHDR")
    width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", header)
    if (depth, colour_type, interlace) != (8, 2, 0):
        raise FractalError("only 8-bit RGB non-interlaced PNGs are supported")
    try:
        raw = zlib.decompress(bytes(idat))
    except zlib.error as exc:
        raise FractalError(f"PNG image data does not decompress: {exc}") from None
    stride = width * 3
    if len(raw) != height * (stride + 1):
        raise FractalError("PNG image data has the wrong length")
    out = bytearray()
    previous = bytearray(stride)
    for y in range(height):
        kind, row = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            left = row[i - 3] if i >= 3 else 0
            up = previous[i]
            upper_left = previous[i - 3] if i >= 3 else 0
            if kind == 1:
                row[i] = (row[i] + left) & 0xFF
            elif kind == 2:
                row[i] = (row[i] + up) & 0xFF
            elif kind == 3:
                row[i] = (row[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - upper_left
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - upper_left)
                predictor = left if pa <= pb and pa <= pc else up if pb <= pc else upper_left
                row[i] = (row[i] + predictor) & 0xFF
            elif kind != 0:
                raise FractalError(f"unknown PNG row filter {kind}")
        out += row
        previous = row
    return width, height, bytes(out)


def render_png(width: int, height: int, tiles: int, max_iter: int) -> bytes:
    """The whole image rendered here, tile by tile, merged exactly as the blueprint merges it."""
    parts = split(width, height, tiles)
    counts = {t: parse_tile(render_tile(width, height, t, max_iter), t, max_iter) for t in parts}
    return encode_png(width, height, merge(width, height, counts, max_iter))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m blueprints.fractal",
        description="Render the Mandelbrot blueprint's image in this process (the benchmark's baseline).",
    )
    parser.add_argument("--size", default="240x160", help="WIDTHxHEIGHT (default: %(default)s)")
    parser.add_argument("--tiles", type=int, default=1, help="tiles to cut the work into (default: 1)")
    parser.add_argument("--max-iter", type=int, default=256, help="iteration limit (default: 256)")
    parser.add_argument("--out", type=Path, default=Path("mandelbrot-local.png"))
    args = parser.parse_args(argv)
    try:
        width, height = parse_size(args.size)
        started = time.perf_counter()
        png = render_png(width, height, args.tiles, check_max_iter(args.max_iter))
    except FractalError as exc:
        sys.exit(f"error: {exc}")
    args.out.write_bytes(png)
    print(f"{args.out} ({width}x{height}, {time.perf_counter() - started:.2f} s)")


if __name__ == "__main__":
    main()
