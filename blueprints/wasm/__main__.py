"""``python -m blueprints.wasm build DIR``: compile the blueprints' WASM modules from their WAT source."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from blueprints.wasm import WasmBuildError, build, sources


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m blueprints.wasm", description="Compile the blueprints' WASM modules from WAT."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    build_command = commands.add_parser("build", help="write DIR/<name>.wasm; print each sha3-224 and path")
    build_command.add_argument("dir", type=Path, metavar="DIR")
    build_command.add_argument("names", nargs="*", help=f"modules to build (default: {', '.join(sources())})")
    args = parser.parse_args(argv)
    try:
        built = build(args.dir, args.names or None)
    except WasmBuildError as exc:
        sys.exit(f"error: {exc}")
    for module in built:
        print(f"{module.sha3_224} {module.path} ({module.size} bytes)")


if __name__ == "__main__":
    main()
