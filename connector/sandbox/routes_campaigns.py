"""Campaigns and senders."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from aiohttp import web

from connector.sandbox.app import STATE
from connector.sandbox.books import STATUS_EXPLAIN as SUBSCRIBER_EXPLAIN
from connector.sandbox.campaigns import DRAFT, FREE_MAIL, NEW, SENT, Campaign
from connector.sandbox.clock import fmt_datetime, parse_datetime
from connector.sandbox.routes_books import book_or_404
from connector.sandbox.state import State
from connector.sandbox.wire import ApiError, as_bool, as_int, as_list, body, paging, query, unjson

routes = web.RouteTableDef()
MAX_LISTS = 10
# Campaign validation errors: SendPulse documents the codes, not the HTTP status; we use 400.
BAD = 400


def campaign_or_404(state: State, raw_id: str) -> Campaign:
    state.tick()
    try:
        campaign = state.campaigns.items.get(int(raw_id))
    except ValueError:
        campaign = None
    if campaign is None:
        raise ApiError(404, "Campaign not found", 802)
    return campaign


def campaign_json(campaign: Campaign, *, full: bool = False) -> dict[str, Any]:
    count = campaign.recipients
    data: dict[str, Any] = {
        "id": campaign.id,
        "name": campaign.name,
        "message": {
            "sender_name": campaign.sender_name,
            "sender_email": campaign.sender_email,
            "subject": campaign.subject,
            "attachments": campaign.attachments or "",
            "list_id": campaign.list_ids[0] if len(campaign.list_ids) == 1 else campaign.list_ids,
        },
        "status": campaign.status,
        "all_email_qty": count,
        "tariff_email_qty": count,
        "paid_email_qty": 0,
        "overdraft_price": "0.0000",
        "overdraft_currency": "USD",
    }
    if full:
        data["message"]["body"] = campaign.body
        data["message"]["template_id"] = campaign.template_id
        data["send_date"] = fmt_datetime(campaign.start)
        # The statistics block's shape is unconfirmed; these are the names SendPulse's
        # dashboard export uses.
        data["statistics"] = campaign.statistics()
    return data


@routes.get("/campaigns")
async def list_campaigns(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.tick()
    params = query(request)
    limit, offset = paging(params)
    order = str(params.get("order") or "asc").lower()
    if order not in ("asc", "desc"):
        raise ApiError(422, "The selected order is invalid.", 422)
    campaigns = list(state.campaigns.items.values())
    statuses = {as_int(s, "status") for s in as_list(params.get("status"))}
    if statuses:
        campaigns = [c for c in campaigns if c.status in statuses]
    if as_bool(params.get("planed", False)):
        campaigns = [c for c in campaigns if c.status == NEW and c.start > state.now()]
    if order == "desc":
        campaigns.reverse()
    return web.json_response([campaign_json(c) for c in campaigns[offset : offset + limit]])


@routes.get("/campaigns/{id}")
async def get_campaign(request: web.Request) -> web.Response:
    campaign = campaign_or_404(request.app[STATE], request.match_info["id"])
    return web.json_response(campaign_json(campaign, full=True))


def _list_ids(state: State, data: dict[str, Any]) -> list[int]:
    raw = unjson(data.get("list_id"))
    if raw is None or raw == "":
        if data.get("segment_id"):
            raise ApiError(BAD, "Segments are not emulated; give list_id", 722)
        raise ApiError(BAD, "List id is missing", 722)
    ids = [as_int(v, "list_id") for v in as_list(raw)]
    if len(ids) > MAX_LISTS:
        raise ApiError(BAD, f"No more than {MAX_LISTS} mailing lists", 722)
    for book_id in ids:
        if book_id not in state.books:
            raise ApiError(BAD, "Mailing list not found", 703)
    return ids


def _send_date(state: State, raw: Any) -> float | None:
    if raw in (None, ""):
        return None
    parsed = parse_datetime(str(raw)) if len(str(raw)) == 19 else None
    if parsed is None or parsed < state.now() - 60:
        raise ApiError(BAD, "Bad date: use YYYY-MM-DD hh:ii:ss, not in the past", 799)
    return parsed


def _body(raw: Any) -> str:
    text = str(raw or "")
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ApiError(BAD, "The body must be Base64-encoded HTML", 13) from exc
    return text


@routes.post("/campaigns")
async def create_campaign(request: web.Request) -> web.Response:
    state = request.app[STATE]
    data = await body(request)
    sender_email = str(data.get("sender_email") or "").strip().lower()
    if not sender_email or not data.get("sender_name"):
        raise ApiError(BAD, "Sender is missing", 1003)
    sender = state.campaigns.senders.get(sender_email)
    if sender is None or not sender.active:
        raise ApiError(BAD, "Sender not found or not activated", 704)
    if not str(data.get("subject") or "").strip():
        raise ApiError(BAD, "Subject is missing", 720)
    template_id = data.get("template_id")
    if not data.get("body") and not template_id:
        raise ApiError(BAD, "Body is missing", 721)
    body_text = _body(data.get("body")) if data.get("body") else ""
    list_ids = _list_ids(state, data)
    send_date = _send_date(state, data.get("send_date"))
    attachments = unjson(data.get("attachments")) or unjson(data.get("attachments_binary")) or {}
    if isinstance(attachments, dict) and len(attachments) > 5:
        raise ApiError(BAD, "No more than 5 attachments", 422)
    is_test = as_bool(data.get("is_test", False))
    draft = data.get("type") == "draft"
    if not is_test and not draft:
        hour_ago = state.now() - 3600
        if state.campaigns.created_since(hour_ago) >= state.settings.campaigns_per_hour:
            raise ApiError(BAD, "You can create no more than 4 campaigns per hour", 791)
    if not draft and not any(state.books[b].total(active=True) for b in list_ids):
        raise ApiError(BAD, "The mailing list is empty", 211)
    campaign = state.create_campaign(
        list_ids,
        subject=str(data["subject"]),
        sender_email=sender_email,
        sender_name=str(data["sender_name"]),
        body=body_text,
        name=data.get("name"),
        template_id=as_int(template_id, "template_id") if template_id else None,
        send_date=send_date,
        is_test=is_test,
        draft=draft,
    )
    campaign.attachments = attachments if isinstance(attachments, dict) else {}
    count = campaign.recipients
    return web.json_response(
        {
            "id": campaign.id,
            "status": campaign.status,
            "count": count,
            "tariff_email_qty": count,
            "overdraft_price": "0.0044",
            "ovedraft_currency": "USD",  # sic: SendPulse's spelling
        }
    )


@routes.patch("/campaigns/{id}")
async def patch_campaign(request: web.Request) -> web.Response:
    state = request.app[STATE]
    campaign = campaign_or_404(state, request.match_info["id"])
    if campaign.status != NEW or campaign.start <= state.now():
        raise ApiError(BAD, "Only a scheduled campaign can be changed", 422)
    data = await body(request)
    for key in ("name", "sender_name", "sender_email", "subject"):
        if data.get(key):
            setattr(campaign, key, str(data[key]))
    if data.get("template_id"):
        campaign.template_id = as_int(data["template_id"], "template_id")
    if data.get("send_date"):
        campaign.send_date = _send_date(state, data["send_date"])
    return web.json_response({"result": True, "id": campaign.id})


@routes.delete("/campaigns/{id}")
async def cancel_campaign(request: web.Request) -> web.Response:
    state = request.app[STATE]
    campaign = campaign_or_404(state, request.match_info["id"])
    if campaign.status not in (NEW, DRAFT):
        raise ApiError(BAD, "The campaign is already being sent", 422)
    del state.campaigns.items[campaign.id]
    return web.json_response({"result": True})


@routes.get("/addressbooks/{id}/campaigns")
async def book_campaigns(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.tick()
    book = book_or_404(state, request.match_info["id"])
    limit, offset = paging(query(request))
    rows = [{"task_id": c.id} for c in state.campaigns.items.values() if book.id in c.list_ids]
    return web.json_response(rows[offset : offset + limit])


@routes.get("/campaigns/{id}/email/{email}")
async def campaign_email(request: web.Request) -> web.Response:
    campaign = campaign_or_404(request.app[STATE], request.match_info["id"])
    email = request.match_info["email"].lower()
    state = request.app[STATE]
    # Membership is checked against the lists now: a campaign keeps a count, not its roster.
    rows = [state.books[b].get(email) for b in campaign.list_ids if b in state.books]
    if campaign.status != SENT or not any(
        r is not None and r.add_date <= campaign.start for r in rows
    ):
        raise ApiError(BAD, "No data", 8)
    return web.json_response(
        {
            "sent_date": fmt_datetime(campaign.start),
            "global_status": 1,
            "global_status_explain": "Delivered",
            "detail_status": 1,
            "detail_status_explain": SUBSCRIBER_EXPLAIN[1],
        }
    )


# -- senders -------------------------------------------------------------------------------
@routes.get("/senders")
async def list_senders(request: web.Request) -> web.Response:
    senders = request.app[STATE].campaigns.senders.values()
    return web.json_response([s.json() for s in senders])


@routes.get("/smtp/senders")
async def smtp_senders(request: web.Request) -> web.Response:
    senders = request.app[STATE].campaigns.senders.values()
    # The SMTP file documents a list of addresses here.
    return web.json_response([s.email for s in senders if s.active])


@routes.post("/senders")
async def add_sender(request: web.Request) -> web.Response:
    state = request.app[STATE]
    data = await body(request)
    email = str(data.get("email") or "").strip().lower()
    if "@" not in email:
        raise ApiError(BAD, "Sender email is missing or invalid", 10)
    if email.rsplit("@", 1)[1] in FREE_MAIL:
        raise ApiError(BAD, "Free mail domains cannot be senders", 20)
    if email in state.campaigns.senders:
        raise ApiError(BAD, "This sender is already in use", 902)
    if email in state.blacklist:
        raise ApiError(BAD, "This address is blacklisted", 904)
    state.add_sender(email, str(data.get("name") or email), active=False)
    return web.json_response({"result": True})


@routes.delete("/senders")
async def delete_sender(request: web.Request) -> web.Response:
    state = request.app[STATE]
    email = str((await body(request)).get("email") or "").strip().lower()
    if state.campaigns.senders.pop(email, None) is None:
        raise ApiError(BAD, "Sender not found", 704)
    return web.json_response({"result": True})


@routes.get("/senders/{email}/code")
async def resend_code(request: web.Request) -> web.Response:
    state = request.app[STATE]
    sender = state.campaigns.senders.get(request.match_info["email"].lower())
    if sender is None:
        raise ApiError(BAD, "Sender not found", 704)
    if state.now() - sender.code_sent < 15 * 60:
        raise ApiError(BAD, "The code was sent less than 15 minutes ago", 1004)
    sender.code_sent = state.now()
    return web.json_response({"result": True})


@routes.post("/senders/{email}/code")
async def activate_sender(request: web.Request) -> web.Response:
    state = request.app[STATE]
    sender = state.campaigns.senders.get(request.match_info["email"].lower())
    if sender is None:
        raise ApiError(BAD, "Sender not found", 704)
    if str((await body(request)).get("code") or "") != sender.code:
        raise ApiError(BAD, "Wrong activation code", BAD)
    sender.active = True
    return web.json_response({"result": True})
