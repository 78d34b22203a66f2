"""Encryption of tokens and credentials at rest, with a key kept outside the database.

The key comes from ``CONNECTOR_SECRET_KEY`` (a Fernet key; several, comma-separated, during a
rotation: the first encrypts, all decrypt). Only the local setup, with no ``DATABASE_URL``,
may generate one by itself, into ``<home>/secret.key``; a production setup without a key is a
startup error, because a fresh random key would make every stored token unreadable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from connector.errors import ConfigError, FatalError
from connector.logging import register_secret

KEY_ENV = "CONNECTOR_SECRET_KEY"
KEY_FILE = "secret.key"


class UndecryptableSecret(FatalError):
    """A stored secret does not decrypt with the configured key (key changed or data damaged)."""


def load_secret_key(env: Mapping[str, str], home: Path) -> bytes:
    """The key from the environment, or (local setup only) from/into ``home``/secret.key."""
    value = (env.get(KEY_ENV) or "").strip()
    if value:
        _check(value, KEY_ENV)
        return _remember(value.encode())
    if env.get("DATABASE_URL"):
        raise ConfigError(
            f"{KEY_ENV} is not set. With DATABASE_URL set, tokens are stored in a shared "
            f"database and need a stable key: generate one with "
            f"`python -c 'from cryptography.fernet import Fernet; "
            f"print(Fernet.generate_key().decode())'` and set {KEY_ENV}"
        )
    path = home / KEY_FILE
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it first; read theirs
        else:
            with os.fdopen(fd, "wb") as handle:
                handle.write(Fernet.generate_key() + b"\n")
    if path.stat().st_mode & 0o077:
        raise ConfigError(f"{path} is readable by other users; run `chmod 600 {path}`")
    value = path.read_text(encoding="ascii").strip()
    _check(value, str(path))
    return _remember(value.encode())


def _remember(key: bytes) -> bytes:
    for part in key.decode().split(","):
        register_secret(part.strip())
    return key


def _check(value: str, where: str) -> None:
    for part in value.split(","):
        try:
            Fernet(part.strip().encode())
        except (ValueError, TypeError):
            raise ConfigError(
                f"{where} is not a valid key (32 url-safe base64-encoded bytes, as made by "
                "Fernet.generate_key())"
            ) from None


class Cipher:
    """Encrypts and decrypts short secrets (tokens, client secrets) for storage."""

    def __init__(self, secret_key: bytes) -> None:
        keys = [part.strip() for part in secret_key.split(b",") if part.strip()]
        if not keys:
            raise ConfigError("the secret key is empty")
        try:
            self._primary = Fernet(keys[0])
            self._fernet = MultiFernet([Fernet(key) for key in keys])
        except (ValueError, TypeError):
            raise ConfigError("the secret key is not a valid Fernet key") from None

    def encrypt(self, plaintext: str) -> bytes:
        return self._fernet.encrypt(plaintext.encode("utf-8"))

    def decrypt(self, ciphertext: bytes) -> str:
        try:
            return self._fernet.decrypt(bytes(ciphertext)).decode("utf-8")
        except InvalidToken:
            raise UndecryptableSecret(
                "a stored secret does not decrypt with the configured key; "
                "was the key changed without keeping the old one?"
            ) from None

    def is_current(self, ciphertext: bytes) -> bool:
        """Whether ``ciphertext`` is under the newest (first) key, so needs no rotation."""
        try:
            self._primary.decrypt(bytes(ciphertext))
        except InvalidToken:
            return False
        return True

    def reencrypt(self, ciphertext: bytes) -> bytes | None:
        """``ciphertext`` under the newest key, or None if it already is.

        Raises :class:`UndecryptableSecret` if no configured key opens it.
        """
        if self.is_current(ciphertext):
            return None
        return self.encrypt(self.decrypt(ciphertext))
