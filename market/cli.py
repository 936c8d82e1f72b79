"""The ``golem`` command: a thin click shell.

Each top-level package contributes its command group through the ``golem.commands`` entry-point
group (see pyproject.toml), so this root never imports the packages layered above ``market``.
"""

from __future__ import annotations

from importlib.metadata import entry_points, version

import click

from market.core.logging import setup_logging


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--log-level",
    default="WARNING",
    envvar="GOLEM_LOG_LEVEL",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    help="Log verbosity (stderr).",
)
@click.version_option(version("golem-market"), prog_name="golem")
def golem(log_level: str) -> None:
    """An open compute marketplace, wire-compatible with the Golem Network."""
    setup_logging(log_level.upper())


def _load_commands() -> None:
    for entry in sorted(entry_points(group="golem.commands"), key=lambda e: e.name):
        command = entry.load()
        golem.add_command(command, entry.name)


def main() -> None:
    _load_commands()
    golem()
