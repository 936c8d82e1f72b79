"""The blueprints' WebAssembly modules, built from their WAT source in this folder.

Each ``<name>.wat`` here is a WASI preview 1 command, compiled with wasmtime's ``wat2wasm`` (the
``wasmtime`` package the provider already depends on, so building needs nothing else) into
``<name>.wasm``; a provider's ``wasmtime`` runtime runs it as the entry point ``main``.

``python -m blueprints.wasm build DIR`` writes every module into ``DIR`` and prints its sha3-224
(what a task package names it by) and path.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import wasmtime

SOURCES = Path(__file__).resolve().parent


class WasmBuildError(ValueError):
    """A module's WAT source does not compile, or names a module that does not exist."""


@dataclass(frozen=True)
class BuiltModule:
    name: str
    path: Path
    sha3_224: str
    size: int


def sources() -> dict[str, Path]:
    """The WAT sources in the repo, by module name."""
    return {path.stem: path for path in sorted(SOURCES.glob("*.wat"))}


def compile_module(name: str) -> bytes:
    """Module ``name`` compiled from its WAT source."""
    found = sources()
    if name not in found:
        raise WasmBuildError(f"no WAT source for {name!r}; known: {', '.join(found) or 'none'}")
    try:
        return bytes(wasmtime.wat2wasm(found[name].read_text()))
    except wasmtime.WasmtimeError as exc:
        raise WasmBuildError(f"{found[name].name} does not compile: {exc}") from None


def build(out_dir: Path, names: list[str] | None = None) -> list[BuiltModule]:
    """Compile the modules (all of them by default) into ``out_dir`` as ``<name>.wasm``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    built = []
    for name in names or list(sources()):
        module = compile_module(name)
        path = out_dir / f"{name}.wasm"
        partial = path.with_name(path.name + ".part")
        partial.write_bytes(module)
        partial.replace(path)  # a server never serves half a module
        built.append(BuiltModule(name, path, hashlib.sha3_224(module).hexdigest(), len(module)))
    return built
