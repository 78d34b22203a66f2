"""API clients, access tokens and App Directory installs."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field


@dataclass(slots=True)
class Token:
    """One issued bearer token."""

    value: str
    client_id: str
    expires_at: float | None  # None: an API key, which never expires
    revoked: bool = False


@dataclass(slots=True)
class App:
    """A marketplace app registered in the App Directory."""

    app_id: str
    secret: str


@dataclass(slots=True)
class Install:
    """One account's install of an app: the per-install client keys."""

    id: str
    user_id: int
    app_id: str
    client_id: str
    client_secret: str
    created: float
    updated: float


@dataclass(slots=True)
class AuthCode:
    app_id: str
    user_id: int
    expires_at: float
    used: bool = False


@dataclass
class Auth:
    """Who may call, and with which tokens."""

    clients: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, Token] = field(default_factory=dict)
    apps: dict[str, App] = field(default_factory=dict)
    codes: dict[str, AuthCode] = field(default_factory=dict)
    installs: dict[str, Install] = field(default_factory=dict)  # by client_id
    market_clients: set[str] = field(default_factory=set)

    def add_client(self, client_id: str, client_secret: str) -> None:
        self.clients[client_id] = client_secret

    def check(self, client_id: str, client_secret: str) -> bool:
        expected = self.clients.get(client_id)
        return expected is not None and secrets.compare_digest(expected, client_secret)

    def issue(self, client_id: str, now: float, ttl: float) -> Token:
        token = Token(secrets.token_urlsafe(32), client_id, now + ttl)
        self.tokens[token.value] = token
        return token

    def add_api_key(self, client_id: str, key: str | None = None) -> str:
        token = Token(key or secrets.token_hex(20), client_id, None)
        self.tokens[token.value] = token
        return token.value

    def lookup(self, value: str) -> Token | None:
        return self.tokens.get(value)

    def valid(self, value: str, now: float) -> Token | None:
        token = self.tokens.get(value)
        if token is None or token.revoked:
            return None
        if token.expires_at is not None and now >= token.expires_at:
            return None
        return token

    def revoke(self, client_id: str | None = None) -> int:
        count = 0
        for token in self.tokens.values():
            if not token.revoked and (client_id is None or token.client_id == client_id):
                token.revoked = True
                count += 1
        return count

    # -- App Directory -------------------------------------------------------------------
    def add_app(self, app_id: str, secret: str) -> None:
        self.apps[app_id] = App(app_id, secret)

    def mint_code(self, app_id: str, user_id: int, now: float, ttl: float = 60.0) -> str:
        code = secrets.token_hex(16)
        self.codes[code] = AuthCode(app_id, user_id, now + ttl)
        return code

    def install(self, app_id: str, user_id: int, now: float) -> Install:
        for existing in self.installs.values():
            if existing.app_id == app_id and existing.user_id == user_id:
                return existing
        install = Install(
            id=str(uuid.uuid4()),
            user_id=user_id,
            app_id=app_id,
            client_id=secrets.token_hex(16),
            client_secret=secrets.token_hex(16),
            created=now,
            updated=now,
        )
        self.installs[install.client_id] = install
        self.market_clients.add(install.client_id)
        self.clients[install.client_id] = install.client_secret
        return install

    def uninstall(self, client_id: str) -> Install | None:
        install = self.installs.pop(client_id, None)
        if install is not None:
            self.clients.pop(client_id, None)
            self.market_clients.discard(client_id)
            self.revoke(client_id)
        return install
