"""The WASM blueprint's module, built from its WAT source, and the script's pure parts: the module
counts primes like a sieve does, refuses bad arguments, and the range splits without gaps."""

from __future__ import annotations

import hashlib
import itertools
import subprocess
import sys
from pathlib import Path

import pytest
import wasmtime

from blueprints.scripts.wasm_tasks import BadOutput, Chunk, local_primes, parse_output, split
from blueprints.wasm import WasmBuildError, build, compile_module, sources


def run_module(module: bytes, *args: str, tmp_path: Path) -> tuple[int, str, str]:
    """Run the module's _start as the wasmtime runtime runs the entry point ``main``."""
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    config = wasmtime.WasiConfig()
    config.argv = ["main", *args]
    out, err = tmp_path / "out", tmp_path / "err"
    config.stdout_file, config.stderr_file = str(out), str(err)
    store.set_wasi(config)
    instance = linker.instantiate(store, wasmtime.Module(engine, module))
    code = 0
    try:
        instance.exports(store)["_start"](store)  # type: ignore[operator]
    except wasmtime.ExitTrap as exit_:
        code = exit_.code
    return code, out.read_text(), err.read_text()


@pytest.fixture(scope="module")
def primes() -> bytes:
    return compile_module("primes")


@pytest.mark.parametrize(
    ("lo", "hi"), [(0, 0), (0, 1), (0, 3), (2, 3), (0, 100), (99_990, 100_100), (0, 300_000)]
)
def test_module_counts_like_a_sieve(primes: bytes, lo: int, hi: int, tmp_path: Path) -> None:
    count, total = local_primes(lo, hi)
    assert run_module(primes, str(lo), str(hi), tmp_path=tmp_path) == (0, f"{lo} {hi} {count} {total}\n", "")


def test_known_values() -> None:
    assert local_primes(0, 1_000_000) == (78_498, 37_550_402_023)
    assert local_primes(0, 2) == (0, 0)
    assert local_primes(7, 8) == (1, 7)


@pytest.mark.parametrize(
    "args",
    [(), ("5",), ("1", "2", "3"), ("x", "5"), ("", "5"), ("5", "4"), ("0", "1000000000001"), ("-1", "5")],
)
def test_module_refuses_bad_arguments(primes: bytes, args: tuple[str, ...], tmp_path: Path) -> None:
    code, out, err = run_module(primes, *args, tmp_path=tmp_path)
    assert (code, out) == (2, "")
    assert err.startswith("usage: main LO HI")


def test_build_command_writes_every_module(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "blueprints.wasm", "build", str(tmp_path)],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert set(sources()) >= {"primes"}
    for name in sources():
        module = (tmp_path / f"{name}.wasm").read_bytes()
        assert module.startswith(b"\0asm")
        assert f"{hashlib.sha3_224(module).hexdigest()} {tmp_path / f'{name}.wasm'}" in done.stdout


def test_unknown_or_broken_sources_are_refused(tmp_path: Path) -> None:
    with pytest.raises(WasmBuildError, match="no WAT source for 'nope'"):
        build(tmp_path, ["nope"])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("start", "stop", "tasks"), [(0, 2_000_000, 6), (0, 5, 5), (10, 13, 3), (7, 1000, 1)]
)
def test_split_covers_the_range(start: int, stop: int, tasks: int) -> None:
    chunks = split(start, stop, tasks)
    assert len(chunks) == tasks
    assert chunks[0].lo == start and chunks[-1].hi == stop
    assert all(a.hi == b.lo for a, b in itertools.pairwise(chunks))
    assert all(c.lo < c.hi for c in chunks)


@pytest.mark.parametrize(
    ("start", "stop", "tasks"), [(5, 5, 1), (0, 3, 4), (0, 10, 0), (-1, 5, 1), (0, 10**13, 2)]
)
def test_split_refuses_bad_ranges(start: int, stop: int, tasks: int) -> None:
    with pytest.raises(ValueError):
        split(start, stop, tasks)


def test_parse_output_checks_the_question() -> None:
    chunk = Chunk(10, 20)
    assert parse_output("10 20 4 60\n", chunk) == (4, 60)
    for bad in (None, "", "10 20 4\n", "10 21 4 60", "10 20 11 60", "10 20 x 60", "usage: main"):
        with pytest.raises(BadOutput):
            parse_output(bad, chunk)
