"""Token encryption and the secret key's sources."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from connector.auth.crypto import Cipher, UndecryptableSecret, load_secret_key
from connector.errors import ConfigError


def test_round_trip_and_ciphertext_hides_the_plaintext() -> None:
    cipher = Cipher(Fernet.generate_key())
    secret = "tf4Si1LydYpTAPyHXUgjig72jlrd5HpIJL5oigmc"
    sealed = cipher.encrypt(secret)
    assert secret.encode() not in sealed
    assert cipher.decrypt(sealed) == secret
    assert cipher.encrypt(secret) != sealed  # fresh IV each time


def test_a_different_key_cannot_decrypt() -> None:
    sealed = Cipher(Fernet.generate_key()).encrypt("token")
    with pytest.raises(UndecryptableSecret, match="key"):
        Cipher(Fernet.generate_key()).decrypt(sealed)


def test_rotation_keeps_old_ciphertexts_readable() -> None:
    old, new = Fernet.generate_key(), Fernet.generate_key()
    sealed = Cipher(old).encrypt("token")
    rotated = Cipher(new + b"," + old)
    assert rotated.decrypt(sealed) == "token"
    assert Cipher(new).decrypt(rotated.encrypt("fresh")) == "fresh"


def test_key_from_the_environment(tmp_path: Path) -> None:
    key = Fernet.generate_key().decode()
    assert load_secret_key({"CONNECTOR_SECRET_KEY": key}, tmp_path) == key.encode()
    assert not (tmp_path / "secret.key").exists()


def test_a_bad_key_in_the_environment_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="CONNECTOR_SECRET_KEY is not a valid key"):
        load_secret_key({"CONNECTOR_SECRET_KEY": "hunter2"}, tmp_path)


def test_production_without_a_key_is_a_clear_error(tmp_path: Path) -> None:
    env = {"DATABASE_URL": "postgresql://db/connector"}
    with pytest.raises(ConfigError, match="CONNECTOR_SECRET_KEY is not set"):
        load_secret_key(env, tmp_path)
    assert not (tmp_path / "secret.key").exists()


def test_local_setup_generates_a_private_key_once(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = load_secret_key({}, home)
    path = home / "secret.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_secret_key({}, home) == first
    Cipher(first).encrypt("works")


def test_a_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    load_secret_key({}, tmp_path)
    (tmp_path / "secret.key").chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_secret_key({}, tmp_path)


def test_a_damaged_key_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    path.write_text("garbage\n")
    path.chmod(0o600)
    with pytest.raises(ConfigError, match="not a valid key"):
        load_secret_key({}, tmp_path)
