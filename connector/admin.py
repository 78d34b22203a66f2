"""The admin listener: ``/readyz``, ``/metrics`` and the status page, apart from the webhooks.

The public listener must face the internet to take SendPulse webhooks and App Directory
installs; what operators look at (install ids in metric labels, flow errors, a Replay button)
must not. So the admin endpoints get a listener of their own, on loopback unless told
otherwise. Bound anywhere else it refuses to start without credentials from the environment:
a bearer token (``CONNECTOR_ADMIN_TOKEN``) or a basic-auth pair (``CONNECTOR_ADMIN_USER`` and
``CONNECTOR_ADMIN_PASSWORD``). Credentials, once set, are asked for on loopback too.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass

from aiohttp import web

from connector.errors import ConfigError
from connector.web import STATE, WebState, healthz, metrics_handler, readyz

TOKEN_ENV = "CONNECTOR_ADMIN_TOKEN"  # noqa: S105 - the variable's name, not a secret
USER_ENV = "CONNECTOR_ADMIN_USER"
PASSWORD_ENV = "CONNECTOR_ADMIN_PASSWORD"  # noqa: S105 - the variable's name, not a secret
REALM = 'Basic realm="connector admin", charset="UTF-8"'


class AdminUnprotected(ConfigError):
    """An admin listener off loopback with no credentials: set them or bind to loopback."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` only ever accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        # A name other than localhost may resolve anywhere: treat it as exposed.
        return False


@dataclass(frozen=True)
class AdminAccess:
    """The credentials the admin listener asks for, if any (never logged, never shown)."""

    token: str | None = None
    user: str | None = None
    password: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AdminAccess:
        env = os.environ if env is None else env
        token = env.get(TOKEN_ENV, "").strip() or None
        user = env.get(USER_ENV, "").strip() or None
        password = env.get(PASSWORD_ENV, "") or None
        if (user is None) != (password is None):
            raise ConfigError(f"set both {USER_ENV} and {PASSWORD_ENV}, or neither")
        if token is not None and len(token) < 16:
            raise ConfigError(f"{TOKEN_ENV} is too short to guess badly: use 16 characters or more")
        return cls(token=token, user=user, password=password)

    @property
    def protected(self) -> bool:
        return self.token is not None or self.user is not None

    def check_binding(self, host: str) -> None:
        """Refuse to serve the admin endpoints off loopback without credentials."""
        if not is_loopback(host) and not self.protected:
            raise AdminUnprotected(
                f"the admin listener on {host} would be open to the network: set "
                f"{TOKEN_ENV} (or {USER_ENV} and {PASSWORD_ENV}), or bind it to 127.0.0.1"
            )

    def allows(self, authorization: str | None) -> bool:
        """Whether an ``Authorization`` header carries one of the configured credentials."""
        if not self.protected:
            return True
        if not authorization:
            return False
        scheme, _, value = authorization.strip().partition(" ")
        scheme = scheme.lower()
        value = value.strip()
        if scheme == "bearer" and self.token is not None:
            return _same(value, self.token)
        if scheme == "basic" and self.user is not None and self.password is not None:
            try:
                decoded = base64.b64decode(value, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return False
            user, sep, password = decoded.partition(":")
            # Both compared every time, so the answer takes as long for a wrong user.
            same_user = _same(user, self.user)
            same_password = _same(password, self.password)
            return bool(sep) and same_user and same_password
        return False


def _same(given: str, expected: str) -> bool:
    # Bytes, not str: compare_digest refuses non-ASCII text with a TypeError.
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def access_middleware(access: AdminAccess) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not access.allows(request.headers.get("Authorization")):
            return web.json_response(
                {"error": "unauthorized"},
                status=401,
                headers={"WWW-Authenticate": REALM if access.user else "Bearer"},
            )
        response = await handler(request)
        # Nothing an operator sees here belongs in a shared cache or a frame of another site.
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response

    return guard


def build_admin_app(
    state: WebState,
    access: AdminAccess,
    routes: Iterable[web.AbstractRouteDef] = (),
) -> web.Application:
    """Readiness, metrics and whatever operator pages ``routes`` adds, behind ``access``."""
    app = web.Application(client_max_size=64 * 1024, middlewares=[access_middleware(access)])
    app[STATE] = state
    app.add_routes(
        [
            web.get("/healthz", healthz),
            web.get("/readyz", readyz),
            web.get("/metrics", metrics_handler),
        ]
    )
    app.add_routes(list(routes))
    return app
