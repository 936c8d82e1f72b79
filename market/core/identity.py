"""Node identity: a secp256k1 key in an encrypted keystore, and EIP-191 signing.

A node's id *is* the Ethereum address of its key, so anything signed with the key can be checked
against the id alone (:func:`recover_signer`), and nobody can speak for an address without the key.
The keystore is the standard Web3 secret-storage JSON (scrypt + AES-128-CTR), which wallets and
``eth_account`` read too. Passwords come from an environment variable, a file or a prompt; the key
never leaves this module except as the :class:`Identity` object, and is never logged.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.messages import encode_defunct

from market.core.errors import IdentityError, SignatureError
from market.core.ids import NodeId, node_id

# scrypt parameters: the standard n=2**18 costs ~1 s and 256 MiB per unlock, which is right for a
# long-lived daemon key; tests and throwaway devnet identities pass a lighter ``kdf_work``.
DEFAULT_KDF_WORK = 2**18
LIGHT_KDF_WORK = 2**12


@dataclass(frozen=True, repr=False)
class Identity:
    """A node's unlocked key. ``repr`` shows only the address."""

    _key: bytes

    @property
    def node_id(self) -> NodeId:
        return node_id(Account.from_key(self._key).address)

    def __repr__(self) -> str:
        return f"Identity({self.node_id})"

    @classmethod
    def generate(cls) -> Identity:
        """A fresh random key (for tests and new nodes)."""
        return cls(bytes(Account.create().key))

    @classmethod
    def from_private_key(cls, key: bytes | str) -> Identity:
        raw = bytes.fromhex(key.removeprefix("0x")) if isinstance(key, str) else key
        if len(raw) != 32:
            raise IdentityError("a private key is 32 bytes")
        return cls(raw)

    def private_key_hex(self) -> str:
        """The raw key, for handing to a chain signer. Never log it."""
        return "0x" + self._key.hex()

    def sign_text(self, text: str) -> str:
        """An EIP-191 (``personal_sign``) signature over ``text``, as 0x-prefixed hex."""
        signed = Account.sign_message(encode_defunct(text=text), private_key=self._key)
        return "0x" + bytes(signed.signature).hex()


def recover_signer(text: str, signature: str) -> NodeId:
    """The node id whose key made ``signature`` over ``text`` (EIP-191)."""
    try:
        raw = bytes.fromhex(signature.removeprefix("0x"))
        if len(raw) != 65:
            raise ValueError("an EIP-191 signature is 65 bytes")
        address = Account.recover_message(encode_defunct(text=text), signature=raw)
    except Exception as exc:  # eth_keys raises a zoo of types for bad input
        raise SignatureError(f"malformed signature: {exc}") from exc
    return node_id(address)


def verify_signature(text: str, signature: str, expected: NodeId) -> None:
    """Raise :class:`SignatureError` unless ``signature`` over ``text`` was made by ``expected``."""
    signer = recover_signer(text, signature)
    if signer != expected.lower():
        raise SignatureError(f"signature is by {signer}, not by {expected}")


# --- keystore -------------------------------------------------------------------------------------


def create_keystore(
    path: Path,
    password: str,
    *,
    identity: Identity | None = None,
    kdf_work: int = DEFAULT_KDF_WORK,
    overwrite: bool = False,
) -> Identity:
    """Write a new (or the given) identity to an encrypted keystore file and return it.

    Refuses to overwrite an existing keystore unless told to: losing a node key loses the funds and
    agreements bound to its address.
    """
    if path.exists() and not overwrite:
        raise IdentityError(f"a keystore already exists at {path}")
    if not password:
        raise IdentityError("an empty keystore password is not allowed")
    ident = identity or Identity.generate()
    blob = Account.encrypt(ident._key, password, kdf="scrypt", iterations=kdf_work)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(blob, fh)
    tmp.replace(path)
    return ident


def keystore_address(path: Path) -> NodeId:
    """The address a keystore holds, read without the password."""
    blob = _read_keystore(path)
    try:
        return node_id("0x" + str(blob["address"]).removeprefix("0x"))
    except (KeyError, ValueError) as exc:
        raise IdentityError(f"{path} is not a keystore: no valid address") from exc


def load_keystore(path: Path, password: str) -> Identity:
    """Unlock a keystore file."""
    blob = _read_keystore(path)
    try:
        key = Account.decrypt(blob, password)
    except ValueError as exc:
        raise IdentityError(f"cannot unlock {path}: wrong password or corrupt keystore") from exc
    return Identity(bytes(key))


def _read_keystore(path: Path) -> dict[str, Any]:
    try:
        blob = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise IdentityError(f"no keystore at {path}; create one with `golem identity create`") from exc
    except (OSError, ValueError) as exc:
        raise IdentityError(f"cannot read keystore {path}: {exc}") from exc
    if not isinstance(blob, dict) or ("crypto" not in blob and "Crypto" not in blob):
        raise IdentityError(f"{path} is not a keystore file")
    return blob


PASSWORD_ENV = "GOLEM_KEYSTORE_PASSWORD"


def resolve_password(
    *,
    password_file: Path | None = None,
    env_var: str = PASSWORD_ENV,
    prompt: Callable[[], str] | None = None,
) -> str:
    """Find the keystore password: a file if given, else the environment, else the prompt."""
    if password_file is not None:
        try:
            return password_file.read_text().rstrip("\r\n")
        except OSError as exc:
            raise IdentityError(f"cannot read password file {password_file}: {exc}") from exc
    from_env = os.environ.get(env_var)
    if from_env:
        return from_env
    if prompt is not None:
        return prompt()
    raise IdentityError(f"no keystore password: set {env_var}, pass --password-file, or run interactively")
