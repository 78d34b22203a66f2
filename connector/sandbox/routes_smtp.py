"""SMTP (transactional email): send, the sent list by date window, bounces, unsubscribes."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from aiohttp import web

from connector.sandbox.app import STATE
from connector.sandbox.clock import fmt_date, parse_datetime
from connector.sandbox.state import State
from connector.sandbox.wire import ApiError, as_list, body, paging, query, unjson

routes = web.RouteTableDef()
MAX_RECIPIENTS = 100
MAX_INFO_IDS = 500
# The SMTP list's maximum page is unconfirmed; we allow 500 and answer 422 above it.
MAX_SMTP_LIMIT = 500


def _address(raw: Any) -> str:
    raw = unjson(raw)
    if isinstance(raw, dict):
        return str(raw.get("email") or "").strip().lower()
    return str(raw or "").strip().lower()


def _invalid(message: str, code: int) -> ApiError:
    """A refused send, as the SMTP file documents them: HTTP 422, `{message, error_code}`."""
    return ApiError(422, message, code)


@routes.post("/smtp/emails")
async def send_email(request: web.Request) -> web.Response:
    state = request.app[STATE]
    email = unjson((await body(request)).get("email"))
    if not isinstance(email, dict):
        raise _invalid("Argument email missing", 422)
    if state.settings.smtp_sending_limited:
        raise _invalid("Sending from your account is currently limited. Please try later.", 422)
    sender = _address(email.get("from"))
    if not sender:
        raise _invalid("Argument from.email missing", 10)
    known = state.campaigns.senders.get(sender)
    if known is None or not known.active:
        raise _invalid("Sender is not valid", 422)
    recipients = [_address(r) for r in as_list(email.get("to"))]
    recipients += [_address(r) for r in as_list(email.get("cc")) + as_list(email.get("bcc"))]
    recipients = [r for r in recipients if "@" in r]
    if not recipients:
        raise _invalid("Argument email.to is invalid", 11)
    if len(recipients) > MAX_RECIPIENTS:
        raise _invalid("5.5.3 Too many recipients", 550)
    subject = str(email.get("subject") or "").strip()
    if not subject:
        raise _invalid("Argument subject missing", 12)
    template = unjson(email.get("template"))
    html, text = email.get("html"), email.get("text")
    if not html and not text and not isinstance(template, dict):
        raise _invalid("Missed email body", 13)
    if isinstance(template, dict) and not template.get("id"):
        raise _invalid("Argument template.id missing", 10)
    size = len(str(text or ""))
    if html:
        try:
            size += len(base64.b64decode(str(html), validate=True))
        except (binascii.Error, ValueError) as exc:
            raise _invalid("Badly formed incoming data", 999) from exc
    records = state.smtp.send(sender, recipients, subject, size, state.now())
    return web.json_response({"result": True, "id": records[0].id})


def _window(state: State, params: dict[str, Any]) -> tuple[float | None, float | None]:
    bounds: list[float | None] = []
    for key in ("from", "to"):
        raw = params.get(key)
        if raw in (None, ""):
            bounds.append(None)
            continue
        parsed = parse_datetime(str(raw))
        if parsed is None:
            raise ApiError(422, f"Bad {key} date: use YYYY-MM-DD", 422)
        # A bare date in `to` means the whole of that day.
        if key == "to" and len(str(raw).strip()) == 10:
            parsed += 86_399.999
        bounds.append(parsed)
    return bounds[0], bounds[1]


def _filtered(state: State, params: dict[str, Any]) -> list[Any]:
    start, end = _window(state, params)
    sender = str(params.get("sender") or "").lower()
    recipient = str(params.get("recipient") or "").lower()
    return [
        r
        for r in state.smtp.sent
        if (start is None or r.send_date >= start)
        and (end is None or r.send_date <= end)
        and (not sender or r.sender == sender)
        and (not recipient or r.recipient == recipient)
    ]


@routes.get("/smtp/emails")
async def list_emails(request: web.Request) -> web.Response:
    state = request.app[STATE]
    params = query(request)
    limit, offset = paging(params, default_limit=100, max_limit=MAX_SMTP_LIMIT)
    rows = _filtered(state, params)[offset : offset + limit]
    return web.json_response([r.json() for r in rows])


@routes.get("/smtp/emails/total")
async def total_emails(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return web.json_response({"total": len(_filtered(state, query(request)))})


@routes.get("/smtp/emails/{id}")
async def get_email(request: web.Request) -> web.Response:
    record = request.app[STATE].smtp.by_id.get(request.match_info["id"])
    if record is None:
        raise ApiError(400, "No such email", 14)
    return web.json_response(record.json())


@routes.post("/smtp/emails/info")
async def emails_info(request: web.Request) -> web.Response:
    state = request.app[STATE]
    ids = [str(i) for i in as_list((await body(request)).get("emails"))]
    if len(ids) > MAX_INFO_IDS:
        raise ApiError(422, f"No more than {MAX_INFO_IDS} ids", 422)
    return web.json_response([state.smtp.by_id[i].json() for i in ids if i in state.smtp.by_id])


@routes.get("/smtp/bounces/day")
async def bounces(request: web.Request) -> web.Response:
    state = request.app[STATE]
    params = query(request)
    limit, offset = paging(params, default_limit=100, max_limit=MAX_SMTP_LIMIT)
    day = str(params.get("date") or fmt_date(state.now()))
    if parse_datetime(day) is None:
        raise ApiError(400, "Bad date: use YYYY-MM-DD", 799)
    rows = state.smtp.bounces_on(day)
    page = rows[offset : offset + limit]
    return web.json_response(
        {
            "total": len(rows),
            "emails": [r.bounce_json() for r in page],
            "request_limit": limit,
            "found": len(page),
        }
    )


@routes.get("/smtp/unsubscribe")
async def list_unsubscribes(request: web.Request) -> web.Response:
    state = request.app[STATE]
    params = query(request)
    limit, offset = paging(params, default_limit=100, max_limit=MAX_SMTP_LIMIT)
    day = params.get("date")
    rows = [u for u in state.smtp.unsubscribes.values() if not day or fmt_date(u.at) == str(day)]
    return web.json_response([u.json() for u in rows[offset : offset + limit]])


@routes.post("/smtp/unsubscribe")
async def add_unsubscribes(request: web.Request) -> web.Response:
    state = request.app[STATE]
    entries = as_list((await body(request)).get("emails"))
    if not entries:
        raise ApiError(400, "No emails given", 303)
    for entry in entries:
        entry = unjson(entry)
        email = _address(entry)
        comment = str(entry.get("comment") or "") if isinstance(entry, dict) else ""
        if "@" in email:
            state.smtp.unsubscribe(email, state.now(), by_link=False, comment=comment)
    return web.json_response({"result": True})


@routes.delete("/smtp/unsubscribe")
async def remove_unsubscribes(request: web.Request) -> web.Response:
    state = request.app[STATE]
    for email in as_list((await body(request)).get("emails")):
        state.smtp.unsubscribes.pop(_address(email), None)
    return web.json_response({"result": True})


@routes.get("/smtp/unsubscribe/search")
async def search_unsubscribe(request: web.Request) -> web.Response:
    email = _address(query(request).get("email"))
    return web.json_response({"result": email in request.app[STATE].smtp.unsubscribes})
