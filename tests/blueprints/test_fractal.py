"""The fractal blueprint's pure parts: the awk renderer providers run and the Python one agree byte
for byte, tiles cover the image exactly once, bad tiles are refused, and PNGs round-trip."""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from blueprints.fractal import (
    RENDERER,
    FractalError,
    Tile,
    decode_png,
    encode_png,
    merge,
    parse_size,
    parse_tile,
    render_png,
    render_tile,
    split,
)

BUSYBOX = shutil.which("busybox")


def awk(width: int, height: int, tile: Tile, max_iter: int) -> subprocess.CompletedProcess[bytes]:
    assert BUSYBOX is not None
    command = tile.awk_command(width, height, max_iter, renderer=str(RENDERER))
    return subprocess.run([BUSYBOX, "sh", "-c", command], capture_output=True, check=False, timeout=60)


@pytest.mark.skipif(BUSYBOX is None, reason="needs busybox (the awk that providers run)")
@pytest.mark.parametrize(
    ("width", "height", "tiles", "max_iter"),
    [(60, 40, 3, 64), (37, 23, 5, 1), (48, 32, 1, 500), (8, 5, 5, 65535)],
)
def test_awk_and_python_render_the_same_bytes(width: int, height: int, tiles: int, max_iter: int) -> None:
    for tile in split(width, height, tiles):
        done = awk(width, height, tile, max_iter)
        assert done.returncode == 0, done.stderr
        assert done.stdout == render_tile(width, height, tile, max_iter), tile
        assert len(parse_tile(done.stdout, tile, max_iter)) == tile.height


@pytest.mark.skipif(BUSYBOX is None, reason="needs busybox (the awk that providers run)")
@pytest.mark.parametrize(
    "tile", [Tile(0, 0, 10, 5, 5), Tile(0, 0, 11, 0, 1), Tile(0, -1, 10, 0, 1), Tile(0, 0, 10, 0, 11)]
)
def test_awk_refuses_a_tile_outside_the_image(tile: Tile) -> None:
    done = awk(10, 10, tile, 64)
    assert done.returncode == 2 and done.stdout == b""
    assert b"bad tile or size" in done.stderr


def test_tiles_cover_every_row_once() -> None:
    for height, count in [(160, 8), (161, 8), (7, 7), (100, 1)]:
        tiles = split(240, height, count)
        assert len(tiles) == count
        assert [t.index for t in tiles] == list(range(count))
        rows = [y for t in tiles for y in range(t.y0, t.y1)]
        assert rows == list(range(height))
        assert max(t.height for t in tiles) - min(t.height for t in tiles) <= 1
        assert all(t.x0 == 0 and t.x1 == 240 for t in tiles)


@pytest.mark.parametrize("count", [0, -1, 11])
def test_more_tiles_than_rows_are_refused(count: int) -> None:
    with pytest.raises(FractalError, match="number of tiles"):
        split(20, 10, count)


@pytest.mark.parametrize("text", ["240", "240x", "ax160", "0x160", "240x100000", "240x160x2"])
def test_bad_sizes_are_refused(text: str) -> None:
    with pytest.raises(FractalError):
        parse_size(text)


def test_parse_size() -> None:
    assert parse_size("240x160") == (240, 160)
    assert parse_size("12X7") == (12, 7)


TILE = Tile(1, 0, 3, 2, 4)


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "not a P2 PGM"),
        (b"\xff\xfe", "not a text PGM"),
        (b"P5\n3 2\n8\n1 2 3 4 5 6\n", "not a P2 PGM"),
        (b"P2\n3 3\n8\n1 2 3 4 5 6 7 8 0\n", "expected 3x2 with maxval 8"),
        (b"P2\n3 2\n9\n1 2 3 4 5 6\n", "expected 3x2 with maxval 8"),
        (b"P2\n3 2\n8\n1 2 3 4 5\n", "5 pixels instead of 6"),
        (b"P2\n3 2\n8\n1 2 3 4 5 9\n", "outside 0..8"),
        (b"P2\n3 2\n8\n1 2 3 4 5 -1\n", "outside 0..8"),
        (b"P2\n3 2\n8\n1 2 3 4 5 x\n", "something else than numbers"),
    ],
)
def test_bad_tiles_are_refused(data: bytes, why: str) -> None:
    with pytest.raises(FractalError, match=why):
        parse_tile(data, TILE, 8)


def test_a_good_tile_parses_into_rows() -> None:
    assert parse_tile(b"P2\n3 2\n8\n1 2 3\n4 5 8\n", TILE, 8) == [[1, 2, 3], [4, 5, 8]]


def test_merge_needs_every_row() -> None:
    tiles = split(4, 4, 2)
    counts = {tiles[0]: [[1, 1, 1, 1]] * 2}
    with pytest.raises(FractalError, match=r"rows 2\.\.3 are missing"):
        merge(4, 4, counts, 8)
    counts[tiles[1]] = [[8, 8, 8, 8]] * 2
    rgb = merge(4, 4, counts, 8)
    assert len(rgb) == 4 * 4 * 3
    assert rgb[-12:] == b"\0" * 12  # inside the set: black


def test_png_round_trip() -> None:
    png = render_png(48, 32, 4, 64)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    width, height, rgb = decode_png(png)
    assert (width, height) == (48, 32)
    tiles = split(48, 32, 4)
    counts = {t: parse_tile(render_tile(48, 32, t, 64), t, 64) for t in tiles}
    assert rgb == merge(48, 32, counts, 64)
    # Tiling does not change the picture.
    assert render_png(48, 32, 1, 64) == png


def _png_with_filters(width: int, height: int, rgb: bytes) -> bytes:
    """A PNG whose rows use filter types 0..4 in turn (what other encoders write)."""
    stride = width * 3
    raw = bytearray()
    previous = bytes(stride)
    for y in range(height):
        row = rgb[y * stride : (y + 1) * stride]
        kind = y % 5
        out = bytearray()
        for i in range(stride):
            left = row[i - 3] if i >= 3 else 0
            up = previous[i]
            upper_left = previous[i - 3] if i >= 3 else 0
            p = left + up - upper_left
            pa, pb, pc = abs(p - left), abs(p - up), abs(p - upper_left)
            paeth = left if pa <= pb and pa <= pc else up if pb <= pc else upper_left
            predictor = [0, left, up, (left + up) // 2, paeth][kind]
            out.append((row[i] - predictor) & 0xFF)
        raw += bytes([kind]) + out
        previous = row

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(raw)))
        + chunk(b"IEND", b"")
    )


def test_decode_undoes_every_row_filter() -> None:
    _, _, rgb = decode_png(render_png(30, 20, 2, 50))
    assert decode_png(_png_with_filters(30, 20, rgb)) == (30, 20, rgb)


def test_a_damaged_png_is_refused() -> None:
    png = bytearray(encode_png(2, 1, b"\1\2\3\4\5\6"))
    assert decode_png(bytes(png)) == (2, 1, b"\1\2\3\4\5\6")
    png[40] ^= 0xFF  # inside IDAT
    with pytest.raises(FractalError, match="CRC"):
        decode_png(bytes(png))
    with pytest.raises(FractalError, match="signature"):
        decode_png(b"GIF89a")
    with pytest.raises(FractalError, match="RGB"):
        encode_png(2, 2, b"\0" * 3)


def test_local_render_command_writes_the_png(tmp_path: Path) -> None:
    from blueprints.fractal import main

    out = tmp_path / "m.png"
    main(["--size", "24x16", "--max-iter", "32", "--out", str(out)])
    assert out.read_bytes() == render_png(24, 16, 1, 32)
    with pytest.raises(SystemExit, match="iteration limit"):
        main(["--max-iter", "0", "--out", str(out)])
