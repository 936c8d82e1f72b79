"""``python -m blueprints.payloads build DIR``: build the blueprints' payload image offline."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from blueprints.payloads import TAG, build
from market.core.errors import GolemError


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m blueprints.payloads", description="Build the blueprints' payload image offline."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    build_command = commands.add_parser("build", help=f"build {TAG} into DIR; print its sha3-224 and path")
    build_command.add_argument("dir", type=Path, metavar="DIR")
    args = parser.parse_args(argv)
    try:
        built = build(args.dir)
    except GolemError as exc:
        sys.exit(f"error: {exc}")
    print(f"{built.sha3_224} {built.archive} ({built.size / 1e6:.1f} MB, {built.tag})")


if __name__ == "__main__":
    main()
