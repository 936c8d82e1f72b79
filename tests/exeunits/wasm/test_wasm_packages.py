"""Packages: bare modules, zips with a manifest, and every way a package can be refused."""

from __future__ import annotations

import asyncio
import json
import zipfile
from pathlib import Path

import pytest
import wasmtime

from exeunits.errors import PackageError
from exeunits.payloads.wasm import build_module
from exeunits.runtime.wasm import PackageManifest, WasmRuntimeConfig, WasmRuntimeFactory

from .conftest import Activities, Output


async def test_bare_module_answers_to_main_and_its_file_stem(activities: Activities) -> None:
    runtime = await activities.start(activities.module("echo_args", file_name="greeter.wasm"))

    assert runtime.entry_points == ["greeter", "main"]
    assert (await runtime.run("greeter", ["x"], Output())).stdout == b"greeter\nx\n"
    assert (await runtime.run("main", [], Output())).stdout == b"main\n"


async def test_zip_manifest_entry_points_with_their_own_args(activities: Activities) -> None:
    package = activities.zip(
        "app.zip",
        {"hello.wasm": "hello", "tools/echo.wasm": "echo_args"},
        {
            "entry_points": {
                "hello": {"wasm": "hello.wasm"},
                "count": {"wasm": "tools/echo.wasm", "args": ["--x", "1"]},
                "again": {"wasm": "./tools/echo.wasm"},
            }
        },
    )
    runtime = await activities.start(package)

    hello = await runtime.run("hello", [], Output())
    count = await runtime.run("count", ["extra"], Output())
    again = await runtime.run("again", [], Output())

    assert runtime.entry_points == ["again", "count", "hello"]
    assert hello.stdout == b"hello from wasm\n"
    assert count.stdout == b"count\n--x\n1\nextra\n"
    assert again.stdout == b"again\n"
    # Two entry points on one module compile it once.
    assert activities.factory.compilations == 1


def _zip_with_raw_entries(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(zipfile.ZipInfo(name), data)
    return path


HELLO_MANIFEST = {"entry_points": {"hello": {"wasm": "hello.wasm"}}}
HELLO_MANIFEST_JSON = json.dumps(HELLO_MANIFEST).encode()


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("text file", "neither a WebAssembly module"),
        ("truncated zip", "not a valid zip archive"),
        ("no manifest", "no manifest.json"),
        ("manifest not json", "manifest.json is invalid"),
        ("manifest without entry points", "entry_points: Field required"),
        ("manifest with no entry point", "entry_points"),
        ("manifest with unknown key", "Extra inputs are not permitted"),
        ("manifest entry point with a bad name", "entry point name"),
        ("manifest naming a missing file", "names 'missing.wasm', which is not in the package"),
        ("manifest path escaping", "no '..'"),
        ("zip slip entry", "zip entry '../evil.wasm' escapes the package"),
        ("absolute zip entry", "zip entry '/abs.wasm' escapes the package"),
        ("zip entry that is not wasm", "hello.wasm is not a WebAssembly module"),
        ("module that does not compile", "does not compile"),
        ("module without _start", "not a WASI command"),
        ("module importing more than WASI", "imports something other than WASI"),
    ],
)
async def test_bad_package_is_refused_at_create(activities: Activities, case: str, expected: str) -> None:
    hello = build_module("hello")
    packages = activities.root / "packages"
    builders = {
        "text file": lambda: activities.raw("notes.wasm", b"hello world\n"),
        "truncated zip": lambda: activities.raw(
            "cut.zip", activities.zip("whole.zip", {"hello.wasm": "hello"}, HELLO_MANIFEST).read_bytes()[:100]
        ),
        "no manifest": lambda: activities.zip("a.zip", {"hello.wasm": "hello"}, None),
        "manifest not json": lambda: activities.zip("a.zip", {"hello.wasm": "hello"}, "{not json"),
        "manifest without entry points": lambda: activities.zip("a.zip", {"hello.wasm": "hello"}, {}),
        "manifest with no entry point": lambda: activities.zip(
            "a.zip", {"hello.wasm": "hello"}, {"entry_points": {}}
        ),
        "manifest with unknown key": lambda: activities.zip(
            "a.zip", {"hello.wasm": "hello"}, {"entry-points": {}, **HELLO_MANIFEST}
        ),
        "manifest entry point with a bad name": lambda: activities.zip(
            "a.zip", {"hello.wasm": "hello"}, {"entry_points": {"../x": {"wasm": "hello.wasm"}}}
        ),
        "manifest naming a missing file": lambda: activities.zip(
            "a.zip", {"hello.wasm": "hello"}, {"entry_points": {"hello": {"wasm": "missing.wasm"}}}
        ),
        "manifest path escaping": lambda: activities.zip(
            "a.zip", {"hello.wasm": "hello"}, {"entry_points": {"hello": {"wasm": "../hello.wasm"}}}
        ),
        "zip slip entry": lambda: _zip_with_raw_entries(
            packages / "slip.zip",
            {
                "hello.wasm": hello,
                "../evil.wasm": hello,
                "manifest.json": HELLO_MANIFEST_JSON,
            },
        ),
        "absolute zip entry": lambda: _zip_with_raw_entries(
            packages / "abs.zip",
            {"hello.wasm": hello, "/abs.wasm": hello, "manifest.json": HELLO_MANIFEST_JSON},
        ),
        "zip entry that is not wasm": lambda: activities.zip(
            "a.zip", {"hello.wasm": b"#!/bin/sh\n"}, HELLO_MANIFEST
        ),
        "module that does not compile": lambda: activities.raw("bad.wasm", b"\0asm\x01\0\0\0\x99"),
        "module without _start": lambda: activities.raw("lib.wasm", bytes(wasmtime.wat2wasm("(module)"))),
        "module importing more than WASI": lambda: activities.raw(
            "host.wasm",
            bytes(wasmtime.wat2wasm('(module (import "env" "f" (func)) (func (export "_start")))')),
        ),
    }
    package = builders[case]()

    with pytest.raises(PackageError) as raised:
        await activities.factory.create(activities.spec(package))
    assert expected in str(raised.value)


async def test_a_refused_package_does_not_affect_the_next_one(
    activities: Activities, factory: WasmRuntimeFactory
) -> None:
    with pytest.raises(PackageError):
        await factory.create(activities.spec(activities.raw("junk.wasm", b"junk")))

    runtime = await activities.start(activities.module("hello"))

    assert (await runtime.run("hello", [], Output())).return_code == 0


async def test_missing_package_file_is_a_package_error(activities: Activities) -> None:
    spec = activities.spec(activities.module("hello"))
    spec.package_path.unlink()

    with pytest.raises(PackageError, match="cannot read package"):
        await activities.factory.create(spec)


def test_manifest_schema_normalises_module_paths() -> None:
    manifest = PackageManifest.model_validate_json(
        '{"entry_points": {"a": {"wasm": "./bin//a.wasm", "args": ["-v"]}}}'
    )

    assert manifest.entry_points["a"].wasm == "bin/a.wasm"
    assert manifest.entry_points["a"].args == ("-v",)


async def test_compiled_packages_are_evicted_least_recently_used_first(tmp_path: Path) -> None:
    async with WasmRuntimeFactory(config=WasmRuntimeConfig(module_cache_size=2)) as factory:
        activities = Activities(factory, tmp_path)
        hello, echo, cat = (activities.module(name) for name in ("hello", "echo_args", "cat"))

        for package in (hello, echo, hello, cat, hello, echo):
            await factory.create(activities.spec(package))

        # hello, echo compiled; hello hit; cat evicts echo; hello hit; echo again evicts cat.
        assert factory.compilations == 4


async def test_concurrent_creates_of_one_package_compile_it_once(activities: Activities) -> None:
    package = activities.module("hello")

    runtimes = await asyncio.gather(*(activities.factory.create(activities.spec(package)) for _ in range(5)))

    assert len(runtimes) == 5
    assert activities.factory.compilations == 1
