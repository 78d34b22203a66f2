"""App Directory side-effects the control surface triggers: login codes and uninstalls."""

from __future__ import annotations

import aiohttp

from connector.sandbox.clock import fmt_market
from connector.sandbox.state import State

CODE_TTL = 60.0


def mint_code(state: State, app_id: str, secret: str, user_id: int = 1) -> str:
    """Register the app if needed and mint a login code (valid 60 s, single use)."""
    app = state.auth.apps.get(app_id)
    if app is None or app.secret != secret:
        state.auth.add_app(app_id, secret)
    return state.auth.mint_code(app_id, user_id, state.now(), CODE_TTL)


async def uninstall(state: State, client_id: str, url: str) -> int:
    """Remove an install and POST SendPulse's uninstall JSON to `url`; returns its status.

    As on SendPulse, the install is gone whatever the receiver answers (0: no connection).
    """
    install = state.auth.uninstall(client_id)
    if install is None:
        raise KeyError(client_id)
    payload = {
        "id": install.id,
        "user_id": install.user_id,
        "app_id": install.app_id,
        "client_id": install.client_id,
        "client_secret": install.client_secret,
        "created_at": fmt_market(install.created),
        "updated_at": fmt_market(state.now()),
    }
    timeout = aiohttp.ClientTimeout(total=15)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(url, json=payload) as resp,
        ):
            return resp.status
    except (aiohttp.ClientError, TimeoutError):
        return 0
