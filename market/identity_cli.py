"""``golem identity``: create and show the node's key."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from market.core.config import data_dir
from market.core.errors import IdentityError
from market.core.identity import (
    DEFAULT_KDF_WORK,
    LIGHT_KDF_WORK,
    PASSWORD_ENV,
    create_keystore,
    keystore_address,
    resolve_password,
)


def _prompt() -> str:
    return str(click.prompt("Keystore password", hide_input=True, confirmation_prompt=True))


def default_keystore() -> Path:
    return data_dir() / "identity" / "keystore.json"


keystore_option = click.option(
    "--keystore",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Keystore file [default: $GOLEM_DATA_DIR/identity/keystore.json].",
)


@click.group()
def identity() -> None:
    """The node identity: a secp256k1 key whose address is the node id."""


@identity.command()
@keystore_option
@click.option(
    "--password-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help=f"Read the keystore password from this file [default: ${PASSWORD_ENV}, else prompt].",
)
@click.option("--force", is_flag=True, help="Overwrite an existing keystore (its key is lost).")
@click.option("--light-kdf", is_flag=True, help="Cheaper key derivation, for throwaway test identities only.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def create(
    keystore: Path | None, password_file: Path | None, force: bool, light_kdf: bool, as_json: bool
) -> None:
    """Create a new node key in an encrypted keystore."""
    path = keystore or default_keystore()
    if path.exists() and not force:
        raise click.ClickException(
            f"a keystore already exists at {path} (use --force to replace it and lose its key)"
        )
    try:
        password = resolve_password(
            password_file=password_file,
            prompt=_prompt if sys.stdin.isatty() else None,
        )
        ident = create_keystore(
            path, password, kdf_work=LIGHT_KDF_WORK if light_kdf else DEFAULT_KDF_WORK, overwrite=force
        )
    except IdentityError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps({"nodeId": ident.node_id, "keystore": str(path)}))
    else:
        click.echo(f"created node {ident.node_id}\nkeystore: {path}")


@identity.command()
@keystore_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def show(keystore: Path | None, as_json: bool) -> None:
    """Show the node id held in the keystore (no password needed)."""
    path = keystore or default_keystore()
    try:
        address = keystore_address(path)
    except IdentityError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps({"nodeId": address, "keystore": str(path)}))
    else:
        click.echo(f"node id:  {address}\nkeystore: {path}")
