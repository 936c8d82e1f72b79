"""Small WASI test modules for the ``wasmtime`` runtime, written by hand in WebAssembly text.

Each module is a WASI preview 1 *command* (it exports ``_start``) and uses only the syscalls it
needs, so tests exercise the runtime's sandbox rather than a libc. They are kept as WAT strings and
assembled with :func:`wasmtime.wat2wasm`, so nothing beyond the ``wasmtime`` Python package is
needed to build them.

=============  ============================================================================
``hello``      prints ``hello from wasm\\n`` to stdout and ``to stderr\\n`` to stderr, exits 0
``echo_args``  prints its argv (``argv[0]`` included), one per line
``print_env``  prints its environment (``KEY=value``), one per line
``copy``       ``copy [SRC_DIR SRC_PATH DST_DIR DST_PATH]``: reads ``SRC_PATH`` under the preopen
               ``SRC_DIR``, writes it upper-cased (ASCII) to ``DST_PATH`` under ``DST_DIR`` and
               prints ``copied N bytes``; by default ``/golem/input in.txt /golem/output
               out.txt``. Preopens are found by their guest name, as a libc would.
``cat``        ``cat DIR PATH``: copies ``PATH`` opened under the preopen ``DIR`` to stdout
``exit_code``  exits with the number in ``argv[1]`` (3 without one)
``loop``       spins forever
``grow``       grows its memory one page at a time until ``memory.grow`` fails, prints
               ``memory.grow failed at N pages`` and exits 1, or traps (``unreachable``) when
               given any argument
``flood``      writes 64 KiB blocks of ``x`` to stdout forever
=============  ============================================================================

A failed open prints ``cannot open PATH: errno N`` (a WASI errno) to stderr and exits 1.

Use :func:`build_module` and :func:`build_package_zip` from tests and benchmarks;
``python -m exeunits.payloads.wasm OUT_DIR`` writes every module as ``OUT_DIR/<name>.wasm``.
"""

from __future__ import annotations

import argparse
import json
import zipfile
from collections.abc import Mapping
from pathlib import Path

import wasmtime

# Memory map shared by the modules built on _LIB (all offsets in page 0 unless noted):
#   0..12     iovec {ptr, len} for fd_read/fd_write, then the byte count they return
#   12        fd returned by path_open
#   16..24    prestat {tag u8, name_len u32 at 20}
#   24, 28    count and buffer size from args_sizes_get / environ_sizes_get
#   32..64    digits of a number being printed (written backwards from 64)
#   256..512  the library's strings; 512..1024 each module's own strings
#   1024..2048  a preopen's guest name, for comparison
#   4096..8192  argv/environ pointers (at most 1024), 8192..65536 their strings
#   page 1    I/O buffer (64 KiB)
_IMPORTS = """
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_close" (func $fd_close (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get"
    (func $environ_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $environ_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_prestat_get" (func $fd_prestat_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_prestat_dir_name"
    (func $fd_prestat_dir_name (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (memory (export "memory") 2)
"""

_LIB = r"""
  (data (i32.const 256) "no such preopen: \00")
  (data (i32.const 288) "cannot open \00")
  (data (i32.const 320) ": errno \00")
  (data (i32.const 336) "\n\00")
  (data (i32.const 352) "read failed\n\00")
  (data (i32.const 368) "write failed\n\00")
  (data (i32.const 384) "argv or environ too large\n\00")

  (func $strlen (param $p i32) (result i32)
    (local $n i32)
    (block $done
      (loop $next
        (br_if $done (i32.eqz (i32.load8_u (i32.add (local.get $p) (local.get $n)))))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (br $next)))
    (local.get $n))

  (func $mem_eq (param $a i32) (param $b i32) (param $n i32) (result i32)
    (block $differ
      (loop $next
        (if (i32.eqz (local.get $n)) (then (return (i32.const 1))))
        (br_if $differ (i32.ne (i32.load8_u (local.get $a)) (i32.load8_u (local.get $b))))
        (local.set $a (i32.add (local.get $a) (i32.const 1)))
        (local.set $b (i32.add (local.get $b) (i32.const 1)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $next)))
    (i32.const 0))

  ;; Write all of [p, p + n) to fd; returns the WASI errno (0 when everything was written).
  (func $write_all (param $fd i32) (param $p i32) (param $n i32) (result i32)
    (local $err i32)
    (block $done
      (loop $more
        (br_if $done (i32.eqz (local.get $n)))
        (i32.store (i32.const 0) (local.get $p))
        (i32.store (i32.const 4) (local.get $n))
        (local.set $err (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8)))
        (br_if $done (local.get $err))
        (local.set $p (i32.add (local.get $p) (i32.load (i32.const 8))))
        (local.set $n (i32.sub (local.get $n) (i32.load (i32.const 8))))
        (br $more)))
    (local.get $err))

  (func $print (param $fd i32) (param $s i32)
    (drop (call $write_all (local.get $fd) (local.get $s) (call $strlen (local.get $s)))))

  (func $print_u32 (param $fd i32) (param $v i32)
    (local $p i32)
    (local.set $p (i32.const 64))
    (loop $digit
      (local.set $p (i32.sub (local.get $p) (i32.const 1)))
      (i32.store8 (local.get $p) (i32.add (i32.const 48) (i32.rem_u (local.get $v) (i32.const 10))))
      (local.set $v (i32.div_u (local.get $v) (i32.const 10)))
      (br_if $digit (local.get $v)))
    (drop (call $write_all (local.get $fd) (local.get $p) (i32.sub (i32.const 64) (local.get $p)))))

  ;; The value of the leading decimal digits at p, or -1 when there are none.
  (func $atoi (param $p i32) (result i32)
    (local $v i32) (local $c i32) (local $any i32)
    (block $done
      (loop $next
        (local.set $c (i32.sub (i32.load8_u (local.get $p)) (i32.const 48)))
        (br_if $done (i32.gt_u (local.get $c) (i32.const 9)))
        (local.set $v (i32.add (i32.mul (local.get $v) (i32.const 10)) (local.get $c)))
        (local.set $any (i32.const 1))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br $next)))
    (select (local.get $v) (i32.const -1) (local.get $any)))

  (func $check_sizes
    (if (i32.or (i32.gt_u (i32.load (i32.const 24)) (i32.const 1024))
                (i32.gt_u (i32.load (i32.const 28)) (i32.const 57344)))
      (then
        (call $print (i32.const 2) (i32.const 384))
        (call $proc_exit (i32.const 2)))))

  ;; Load argv into the string area and return argc.
  (func $load_args (result i32)
    (drop (call $args_sizes_get (i32.const 24) (i32.const 28)))
    (call $check_sizes)
    (drop (call $args_get (i32.const 4096) (i32.const 8192)))
    (i32.load (i32.const 24)))

  ;; Load the environment into the string area and return the number of variables.
  (func $load_environ (result i32)
    (drop (call $environ_sizes_get (i32.const 24) (i32.const 28)))
    (call $check_sizes)
    (drop (call $environ_get (i32.const 4096) (i32.const 8192)))
    (i32.load (i32.const 24)))

  ;; The i-th string loaded by $load_args or $load_environ.
  (func $arg (param $i i32) (result i32)
    (i32.load (i32.add (i32.const 4096) (i32.shl (local.get $i) (i32.const 2)))))

  (func $arg_or (param $i i32) (param $argc i32) (param $default i32) (result i32)
    (if (result i32) (i32.lt_u (local.get $i) (local.get $argc))
      (then (call $arg (local.get $i)))
      (else (local.get $default))))

  ;; The fd of the preopened directory whose guest name is the string at $name, or -1.
  (func $find_preopen (param $name i32) (result i32)
    (local $fd i32) (local $len i32) (local $err i32)
    (local.set $len (call $strlen (local.get $name)))
    (local.set $fd (i32.const 3))
    (block $none
      (loop $next
        (local.set $err (call $fd_prestat_get (local.get $fd) (i32.const 16)))
        ;; EBADF: past the last preopen.
        (br_if $none (i32.eq (local.get $err) (i32.const 8)))
        (if (i32.eqz (local.get $err))
          (then
            (if (i32.and (i32.eqz (i32.load8_u (i32.const 16)))
                         (i32.eq (i32.load (i32.const 20)) (local.get $len)))
              (then
                (if (i32.le_u (local.get $len) (i32.const 1024))
                  (then
                    (if (i32.eqz (call $fd_prestat_dir_name
                                   (local.get $fd) (i32.const 1024) (local.get $len)))
                      (then
                        (if (call $mem_eq (i32.const 1024) (local.get $name) (local.get $len))
                          (then (return (local.get $fd))))))))))))
        (local.set $fd (i32.add (local.get $fd) (i32.const 1)))
        (br_if $next (i32.lt_u (local.get $fd) (i32.const 64)))))
    (i32.const -1))

  ;; Open $path under the preopen named $dir (symlinks followed); exits 1 saying why on failure.
  (func $open (param $dir i32) (param $path i32) (param $oflags i32) (param $rights i64) (result i32)
    (local $dirfd i32) (local $err i32)
    (local.set $dirfd (call $find_preopen (local.get $dir)))
    (if (i32.lt_s (local.get $dirfd) (i32.const 0))
      (then
        (call $print (i32.const 2) (i32.const 256))
        (call $print (i32.const 2) (local.get $dir))
        (call $print (i32.const 2) (i32.const 336))
        (call $proc_exit (i32.const 1))))
    (local.set $err
      (call $path_open (local.get $dirfd) (i32.const 1) (local.get $path) (call $strlen (local.get $path))
                       (local.get $oflags) (local.get $rights) (i64.const 0) (i32.const 0) (i32.const 12)))
    (if (local.get $err)
      (then
        (call $print (i32.const 2) (i32.const 288))
        (call $print (i32.const 2) (local.get $path))
        (call $print (i32.const 2) (i32.const 320))
        (call $print_u32 (i32.const 2) (local.get $err))
        (call $print (i32.const 2) (i32.const 336))
        (call $proc_exit (i32.const 1))))
    (i32.load (i32.const 12)))

  ;; Copy fd $in to fd $out through the page-1 buffer, upper-casing ASCII letters when $upper;
  ;; returns the number of bytes copied.
  (func $pump (param $in i32) (param $out i32) (param $upper i32) (result i32)
    (local $n i32) (local $i i32) (local $c i32) (local $total i32)
    (block $eof
      (loop $chunk
        (i32.store (i32.const 0) (i32.const 65536))
        (i32.store (i32.const 4) (i32.const 65536))
        (if (call $fd_read (local.get $in) (i32.const 0) (i32.const 1) (i32.const 8))
          (then
            (call $print (i32.const 2) (i32.const 352))
            (call $proc_exit (i32.const 1))))
        (local.set $n (i32.load (i32.const 8)))
        (br_if $eof (i32.eqz (local.get $n)))
        (if (local.get $upper)
          (then
            (local.set $i (i32.const 0))
            (block $done
              (loop $each
                (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
                (local.set $c (i32.load8_u (i32.add (i32.const 65536) (local.get $i))))
                (if (i32.lt_u (i32.sub (local.get $c) (i32.const 97)) (i32.const 26))
                  (then
                    (i32.store8 (i32.add (i32.const 65536) (local.get $i))
                                (i32.sub (local.get $c) (i32.const 32)))))
                (local.set $i (i32.add (local.get $i) (i32.const 1)))
                (br $each)))))
        (if (call $write_all (local.get $out) (i32.const 65536) (local.get $n))
          (then
            (call $print (i32.const 2) (i32.const 368))
            (call $proc_exit (i32.const 1))))
        (local.set $total (i32.add (local.get $total) (local.get $n)))
        (br $chunk)))
    (local.get $total))
"""


def _command(body: str) -> str:
    """A WASI command module: the imports, the helper library, then ``body`` (data and ``_start``)."""
    return f"(module\n{_IMPORTS}\n{_LIB}\n{body}\n)\n"


MODULES: dict[str, str] = {
    "hello": _command(
        r"""
  (data (i32.const 512) "hello from wasm\n\00")
  (data (i32.const 544) "to stderr\n\00")
  (func (export "_start")
    (call $print (i32.const 1) (i32.const 512))
    (call $print (i32.const 2) (i32.const 544)))
"""
    ),
    "echo_args": _command(
        r"""
  (func (export "_start")
    (local $argc i32) (local $i i32)
    (local.set $argc (call $load_args))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $argc)))
        (call $print (i32.const 1) (call $arg (local.get $i)))
        (call $print (i32.const 1) (i32.const 336))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next))))
"""
    ),
    "print_env": _command(
        r"""
  (func (export "_start")
    (local $count i32) (local $i i32)
    (local.set $count (call $load_environ))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $count)))
        (call $print (i32.const 1) (call $arg (local.get $i)))
        (call $print (i32.const 1) (i32.const 336))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next))))
"""
    ),
    "copy": _command(
        r"""
  (data (i32.const 512) "/golem/input\00")
  (data (i32.const 528) "in.txt\00")
  (data (i32.const 544) "/golem/output\00")
  (data (i32.const 560) "out.txt\00")
  (data (i32.const 576) "copied \00")
  (data (i32.const 592) " bytes\n\00")
  (func (export "_start")
    (local $argc i32) (local $in i32) (local $out i32) (local $n i32)
    (local.set $argc (call $load_args))
    ;; rights: FD_READ (1 << 1) for the source; FD_WRITE (1 << 6) with O_CREAT | O_TRUNC for the copy.
    (local.set $in
      (call $open (call $arg_or (i32.const 1) (local.get $argc) (i32.const 512))
                  (call $arg_or (i32.const 2) (local.get $argc) (i32.const 528))
                  (i32.const 0) (i64.const 2)))
    (local.set $out
      (call $open (call $arg_or (i32.const 3) (local.get $argc) (i32.const 544))
                  (call $arg_or (i32.const 4) (local.get $argc) (i32.const 560))
                  (i32.const 9) (i64.const 64)))
    (local.set $n (call $pump (local.get $in) (local.get $out) (i32.const 1)))
    (drop (call $fd_close (local.get $in)))
    (drop (call $fd_close (local.get $out)))
    (call $print (i32.const 1) (i32.const 576))
    (call $print_u32 (i32.const 1) (local.get $n))
    (call $print (i32.const 1) (i32.const 592)))
"""
    ),
    "cat": _command(
        r"""
  (data (i32.const 512) "usage: cat DIR PATH\n\00")
  (func (export "_start")
    (local $in i32)
    (if (i32.lt_u (call $load_args) (i32.const 3))
      (then
        (call $print (i32.const 2) (i32.const 512))
        (call $proc_exit (i32.const 2))))
    (local.set $in
      (call $open (call $arg (i32.const 1)) (call $arg (i32.const 2)) (i32.const 0) (i64.const 2)))
    (drop (call $pump (local.get $in) (i32.const 1) (i32.const 0))))
"""
    ),
    "exit_code": _command(
        r"""
  (func (export "_start")
    (local $code i32)
    (local.set $code (i32.const 3))
    (if (i32.ge_u (call $load_args) (i32.const 2))
      (then (local.set $code (call $atoi (call $arg (i32.const 1))))))
    (if (i32.lt_s (local.get $code) (i32.const 0))
      (then (local.set $code (i32.const 3))))
    (call $proc_exit (local.get $code)))
"""
    ),
    "loop": """(module
  (memory (export "memory") 1)
  (func (export "_start")
    (loop $spin (br $spin))))
""",
    "grow": _command(
        r"""
  (data (i32.const 512) "memory.grow failed at \00")
  (data (i32.const 544) " pages\n\00")
  (func (export "_start")
    (local $argc i32)
    (local.set $argc (call $load_args))
    (block $full
      (loop $more
        (br_if $full (i32.eq (memory.grow (i32.const 1)) (i32.const -1)))
        (br $more)))
    (call $print (i32.const 1) (i32.const 512))
    (call $print_u32 (i32.const 1) (memory.size))
    (call $print (i32.const 1) (i32.const 544))
    (if (i32.ge_u (local.get $argc) (i32.const 2))
      (then unreachable))
    (call $proc_exit (i32.const 1)))
"""
    ),
    "flood": _command(
        r"""
  (func (export "_start")
    (memory.fill (i32.const 65536) (i32.const 120) (i32.const 65536))
    (loop $forever
      (drop (call $write_all (i32.const 1) (i32.const 65536) (i32.const 65536)))
      (br $forever)))
"""
    ),
}
"""WAT source of each test module, by name."""


def build_module(name: str) -> bytes:
    """The binary module ``name`` (a key of :data:`MODULES`)."""
    try:
        source = MODULES[name]
    except KeyError:
        raise KeyError(f"no test module {name!r}; known: {', '.join(sorted(MODULES))}") from None
    return bytes(wasmtime.wat2wasm(source))


def build_package_zip(
    path: Path,
    modules: Mapping[str, str | bytes],
    manifest: Mapping[str, object] | str | None,
) -> Path:
    """Write a zip package at ``path`` and return ``path``.

    ``modules`` maps each entry's name in the zip to the name of a test module (a ``str``, built
    with :func:`build_module`) or to the entry's raw content (``bytes``, e.g. to make a broken
    package). ``manifest`` is written as ``manifest.json``: a mapping is serialised as JSON, a
    string verbatim, and ``None`` leaves the manifest out.
    """
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for entry, content in modules.items():
            data = build_module(content) if isinstance(content, str) else content
            archive.writestr(entry, data)
        if manifest is not None:
            text = manifest if isinstance(manifest, str) else json.dumps(manifest)
            archive.writestr("manifest.json", text)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m exeunits.payloads.wasm",
        description="Write the WASI test modules as OUT_DIR/<name>.wasm.",
    )
    parser.add_argument("out_dir", type=Path, metavar="OUT_DIR")
    options = parser.parse_args(argv)
    out_dir: Path = options.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in MODULES:
        target = out_dir / f"{name}.wasm"
        target.write_bytes(build_module(name))
        print(target)


if __name__ == "__main__":
    main()
