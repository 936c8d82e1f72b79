from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from market.core.errors import IdentityError, SignatureError
from market.core.identity import (
    LIGHT_KDF_WORK,
    Identity,
    create_keystore,
    keystore_address,
    load_keystore,
    recover_signer,
    resolve_password,
    verify_signature,
)


def test_keystore_round_trip_and_file_mode(tmp_path: Path) -> None:
    path = tmp_path / "id" / "keystore.json"
    ident = create_keystore(path, "s3cret", kdf_work=LIGHT_KDF_WORK)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert keystore_address(path) == ident.node_id
    assert load_keystore(path, "s3cret").node_id == ident.node_id
    assert "s3cret" not in path.read_text()
    assert ident.private_key_hex()[2:] not in path.read_text()


def test_keystore_wrong_password_and_refused_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "keystore.json"
    ident = create_keystore(path, "right", kdf_work=LIGHT_KDF_WORK)
    with pytest.raises(IdentityError, match="wrong password"):
        load_keystore(path, "wrong")
    with pytest.raises(IdentityError, match="already exists"):
        create_keystore(path, "other", kdf_work=LIGHT_KDF_WORK)
    assert keystore_address(path) == ident.node_id  # unchanged


@pytest.mark.parametrize("content", ["", "not json", "[]", json.dumps({"address": "zz"})])
def test_unreadable_keystores(tmp_path: Path, content: str) -> None:
    path = tmp_path / "keystore.json"
    path.write_text(content)
    with pytest.raises(IdentityError):
        load_keystore(path, "x")


def test_missing_keystore_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(IdentityError, match="golem identity create"):
        keystore_address(tmp_path / "nope.json")


def test_empty_password_refused(tmp_path: Path) -> None:
    with pytest.raises(IdentityError, match="empty"):
        create_keystore(tmp_path / "k.json", "", kdf_work=LIGHT_KDF_WORK)
    assert not (tmp_path / "k.json").exists()


def test_sign_and_recover() -> None:
    alice, bob = Identity.generate(), Identity.generate()
    signature = alice.sign_text("hello")
    assert recover_signer("hello", signature) == alice.node_id
    verify_signature("hello", signature, alice.node_id)
    with pytest.raises(SignatureError, match="not by"):
        verify_signature("hello", signature, bob.node_id)
    with pytest.raises(SignatureError):
        verify_signature("hello!", signature, alice.node_id)
    for bad in ("0x", "0x1234", "zz" * 65, ""):
        with pytest.raises(SignatureError, match="malformed"):
            recover_signer("hello", bad)


def test_repr_never_shows_the_key() -> None:
    ident = Identity.generate()
    assert ident.private_key_hex()[2:] not in repr(ident)
    assert ident.node_id in repr(ident)


def test_password_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOLEM_KEYSTORE_PASSWORD", raising=False)
    file = tmp_path / "pw"
    file.write_text("from-file\n")
    monkeypatch.setenv("GOLEM_KEYSTORE_PASSWORD", "from-env")
    assert resolve_password(password_file=file) == "from-file"
    assert resolve_password() == "from-env"
    monkeypatch.delenv("GOLEM_KEYSTORE_PASSWORD")
    assert resolve_password(prompt=lambda: "typed") == "typed"
    with pytest.raises(IdentityError, match="GOLEM_KEYSTORE_PASSWORD"):
        resolve_password()
