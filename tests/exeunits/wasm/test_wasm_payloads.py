"""The WAT test modules assemble, and the module's command line writes them all."""

from __future__ import annotations

from pathlib import Path

import pytest

from exeunits.payloads.wasm import MODULES, build_module, main


def test_every_module_assembles_to_a_wasm_binary() -> None:
    for name in MODULES:
        assert build_module(name).startswith(b"\0asm"), name


def test_unknown_module_name_lists_the_known_ones() -> None:
    with pytest.raises(KeyError, match="hello"):
        build_module("nope")


def test_command_line_writes_each_module(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main([str(tmp_path / "out")])
    written = sorted(path.name for path in (tmp_path / "out").iterdir())
    assert written == sorted(f"{name}.wasm" for name in MODULES)
    assert (tmp_path / "out" / "hello.wasm").read_bytes() == build_module("hello")
    assert str(tmp_path / "out" / "hello.wasm") in capsys.readouterr().out
