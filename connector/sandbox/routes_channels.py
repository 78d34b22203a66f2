"""SMS, web push and Automation 360 endpoints."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiohttp import web

from connector.sandbox.app import STATE
from connector.sandbox.channels import PushTask, SmsCampaign
from connector.sandbox.clock import fmt_datetime, parse_datetime
from connector.sandbox.routes_books import book_or_404
from connector.sandbox.state import State
from connector.sandbox.wire import ApiError, as_int, as_list, body, paging, query, unjson

routes = web.RouteTableDef()
MAX_SMS_SENDER = 11
MAX_PUSH_TTL = 86_400


# -- SMS -----------------------------------------------------------------------------------
def _sms_json(campaign: SmsCampaign) -> dict[str, Any]:
    return {
        "id": campaign.id,
        "address_book_id": campaign.book_id,
        "company_price": round(0.02 * len(campaign.phones), 4),
        "company_currency": "USD",
        "send_date": fmt_datetime(campaign.send_date),
        "date_created": fmt_datetime(campaign.created),
        "sender_mail_address": "sender@example.com",
        "sender_mail_name": campaign.sender,
    }


def _phones(raw: Any) -> list[str]:
    phones = [str(p).strip().lstrip("+") for p in as_list(raw)]
    if not phones or not all(p.isdigit() for p in phones):
        raise ApiError(400, "phones must be a list of numbers", 11)
    return phones


@routes.post("/sms/numbers")
async def add_numbers(request: web.Request) -> web.Response:
    state = request.app[STATE]
    data = await body(request)
    book = book_or_404(state, str(data.get("addressBookId") or ""))
    raw = unjson(data.get("phones"))
    if isinstance(raw, dict):
        # Phones with variables go to /sms/numbers/variables; this one takes a plain list.
        raise ApiError(400, "phones must be a list of numbers", 11)
    return web.json_response(_add_phones(state, book.id, ((p, {}) for p in as_list(raw))))


@routes.post("/sms/numbers/variables")
async def add_numbers_with_variables(request: web.Request) -> web.Response:
    """`phones` maps each number to a list of lists of `{name, type, value}`."""
    state = request.app[STATE]
    data = await body(request)
    book = book_or_404(state, str(data.get("addressBookId") or ""))
    raw = unjson(data.get("phones"))
    if not isinstance(raw, dict):
        raise ApiError(400, "phones must map numbers to their variables", 11)
    entries = []
    for phone, groups in raw.items():
        variables: dict[str, Any] = {}
        for group in as_list(groups):
            for row in as_list(group):
                if not isinstance(row, dict) or not {"name", "type", "value"} <= set(row):
                    raise ApiError(400, "each variable is {name, type, value}", 11)
                variables[str(row["name"])] = row["value"]
        entries.append((phone, variables))
    return web.json_response([_add_phones(state, book.id, entries)])


def _add_phones(state: State, book_id: int, entries: Iterable[tuple[Any, Any]]) -> dict[str, Any]:
    stored = state.channels.phones.setdefault(book_id, {})
    added = exists = exceptions = 0
    for phone, variables in entries:
        number = str(phone).strip().lstrip("+")
        if not number.isdigit():
            exceptions += 1
        elif number in stored:
            exists += 1
        else:
            stored[number] = {"variables": variables or {}, "added": state.now()}
            added += 1
    counters = {"added": added, "exceptions": exceptions, "exists": exists}
    return {"result": True, "counters": counters}


@routes.get("/sms/numbers/info/{book}/{phone}")
async def number_info(request: web.Request) -> web.Response:
    state = request.app[STATE]
    book = book_or_404(state, request.match_info["book"])
    entry = state.channels.phones.get(book.id, {}).get(request.match_info["phone"].lstrip("+"))
    if entry is None:
        raise ApiError(404, "Phone not found", 502)
    data = {"status": 0, "variables": entry["variables"], "added": fmt_datetime(entry["added"])}
    # The SMS file documents a list of `{result, data}` here.
    return web.json_response([{"result": True, "data": data}])


def _sender(data: dict[str, Any]) -> str:
    sender = str(data.get("sender") or "")
    if not sender or len(sender) > MAX_SMS_SENDER:
        raise ApiError(400, f"sender is required, at most {MAX_SMS_SENDER} characters", 10)
    if not str(data.get("body") or ""):
        raise ApiError(400, "body is required", 13)
    return sender


@routes.post("/sms/campaigns")
async def sms_campaign(request: web.Request) -> web.Response:
    state = request.app[STATE]
    data = await body(request)
    sender = _sender(data)
    book = book_or_404(state, str(data.get("addressBookId") or ""))
    phones = list(state.channels.phones.get(book.id, {}))
    if not phones:
        raise ApiError(400, "The mailing list has no phone numbers", 211)
    when = state.now()
    if data.get("date"):
        parsed = parse_datetime(str(data["date"]))
        if parsed is None:
            raise ApiError(400, "Bad date: use YYYY-MM-DD hh:ii:ss", 799)
        when = parsed
    campaign = SmsCampaign(
        state.channels.new_id(), book.id, sender, str(data["body"]), phones, when, state.now()
    )
    state.channels.sms[campaign.id] = campaign
    return web.json_response({"result": True, "campaign_id": campaign.id})


@routes.post("/sms/send")
async def sms_send(request: web.Request) -> web.Response:
    state = request.app[STATE]
    data = await body(request)
    sender = _sender(data)
    phones = _phones(data.get("phones"))
    now = state.now()
    campaign = SmsCampaign(
        state.channels.new_id(), None, sender, str(data["body"]), phones, now, now
    )
    state.channels.sms[campaign.id] = campaign
    return web.json_response({"result": True, "campaign_id": campaign.id})


@routes.get("/sms/campaigns/list")
async def sms_list(request: web.Request) -> web.Response:
    state = request.app[STATE]
    params = query(request)
    bounds = []
    for key in ("dateFrom", "dateTo"):
        raw = params.get(key)
        parsed = parse_datetime(str(raw)) if raw else None
        if raw and parsed is None:
            raise ApiError(400, f"Bad {key}: use YYYY-MM-DD HH:MM:SS", 799)
        bounds.append(parsed)
    start, end = bounds
    rows = [
        _sms_json(c)
        for c in state.channels.sms.values()
        if (start is None or c.created >= start) and (end is None or c.created <= end)
    ]
    return web.json_response({"result": True, "data": rows})


@routes.get("/sms/campaigns/info/{id}")
async def sms_info(request: web.Request) -> web.Response:
    state = request.app[STATE]
    campaign = state.channels.sms.get(as_int(request.match_info["id"], "id"))
    if campaign is None:
        raise ApiError(404, "Campaign not found", 802)
    # The SMS file documents a list here.
    return web.json_response([_sms_json(campaign)])


@routes.put("/sms/campaigns/cancel/{id}")
async def sms_cancel(request: web.Request) -> web.Response:
    state = request.app[STATE]
    campaign = state.channels.sms.get(as_int(request.match_info["id"], "id"))
    if campaign is None:
        raise ApiError(404, "Campaign not found", 802)
    if campaign.send_date <= state.now():
        raise ApiError(400, "The campaign has already been sent", 422)
    del state.channels.sms[campaign.id]
    return web.json_response({"result": True})


# -- web push ------------------------------------------------------------------------------
@routes.get("/push/websites")
async def websites(request: web.Request) -> web.Response:
    state = request.app[STATE]
    limit, offset = paging(query(request))
    rows = list(state.channels.websites.values())[offset : offset + limit]
    return web.json_response(
        [
            {"id": w.id, "url": w.url, "add_date": fmt_datetime(w.added), "status": w.status}
            for w in rows
        ]
    )


@routes.get("/push/websites/total")
async def websites_total(request: web.Request) -> web.Response:
    return web.json_response({"total": len(request.app[STATE].channels.websites)})


def _subscriptions(request: web.Request) -> list[Any]:
    state = request.app[STATE]
    website_id = as_int(request.match_info["id"], "id")
    if website_id not in state.channels.websites:
        raise ApiError(404, "Website not found", 404)
    params = query(request)
    bounds = []
    for key in ("subscription_date_from", "subscription_date_to"):
        raw = params.get(key)
        parsed = parse_datetime(str(raw)) if raw else None
        if raw and parsed is None:
            raise ApiError(400, f"Bad {key}: use YYYY-MM-DD", 799)
        if parsed is not None and key.endswith("_to") and len(str(raw)) == 10:
            parsed += 86_399.999
        bounds.append(parsed)
    start, end = bounds
    return [
        s
        for s in state.channels.subscriptions
        if s.website_id == website_id
        and (start is None or s.subscribed >= start)
        and (end is None or s.subscribed <= end)
    ]


@routes.get("/push/websites/{id}/subscriptions")
async def subscriptions(request: web.Request) -> web.Response:
    limit, offset = paging(query(request))
    rows = _subscriptions(request)[offset : offset + limit]
    return web.json_response(
        [
            {
                "id": s.id,
                "browser": s.browser,
                "lang": s.lang,
                "os": s.os,
                "country_code": s.country_code,
                "city": s.city,
                "variables": s.variables,
                "subscription_date": fmt_datetime(s.subscribed),
                "status": s.status,
            }
            for s in rows
        ]
    )


@routes.get("/push/websites/{id}/subscriptions/total")
async def subscriptions_total(request: web.Request) -> web.Response:
    return web.json_response({"total": len(_subscriptions(request))})


def _task_json(task: PushTask) -> dict[str, Any]:
    return {
        "id": task.id,
        "title": task.title,
        "body": task.body,
        "website_id": task.website_id,
        "from": fmt_datetime(task.created),
        "to": fmt_datetime(task.created + task.ttl),
        "status": 3,
    }


@routes.get("/push/tasks")
async def push_tasks(request: web.Request) -> web.Response:
    state = request.app[STATE]
    params = query(request)
    limit, offset = paging(params)
    website = params.get("website_id")
    start = parse_datetime(str(params["from"])) if params.get("from") else None
    end = parse_datetime(str(params["to"])) if params.get("to") else None
    rows = [
        t
        for t in state.channels.push_tasks.values()
        if (website in (None, "") or t.website_id == as_int(website, "website_id"))
        and (start is None or t.created >= start)
        and (end is None or t.created <= end)
    ]
    return web.json_response([_task_json(t) for t in rows[offset : offset + limit]])


@routes.post("/push/tasks")
async def create_push_task(request: web.Request) -> web.Response:
    state = request.app[STATE]
    data = await body(request)
    website_id = as_int(data.get("website_id"), "website_id")
    if website_id not in state.channels.websites:
        raise ApiError(404, "Website not found", 404)
    title, text = str(data.get("title") or ""), str(data.get("body") or "")
    if not title or not text:
        raise ApiError(400, "title and body are required", 13)
    # The file sets no minimum, and the PHP SDK's createPushTask sends 0 when the caller gives
    # no ttl: 0 is taken as the longest life (chosen).
    ttl = as_int(data.get("ttl"), "ttl", default=MAX_PUSH_TTL) or MAX_PUSH_TTL
    if not 0 < ttl <= MAX_PUSH_TTL:
        raise ApiError(422, f"ttl must be 0..{MAX_PUSH_TTL} seconds", 422)
    task = PushTask(
        state.channels.new_id(),
        website_id,
        title,
        text,
        str(data.get("link") or ""),
        ttl,
        state.now(),
    )
    state.channels.push_tasks[task.id] = task
    return web.json_response({"result": True, "id": task.id})


@routes.post("/push/subscriptions/state")
async def subscription_state(request: web.Request) -> web.Response:
    state = request.app[STATE]
    data = await body(request)
    wanted, new_state = as_int(data.get("id"), "id"), as_int(data.get("state"), "state")
    if new_state not in (0, 1):
        raise ApiError(422, "state must be 0 or 1", 422)
    for subscription in state.channels.subscriptions:
        if subscription.id == wanted:
            subscription.status = new_state
            return web.json_response({"result": True})
    raise ApiError(404, "Subscription not found", 404)


# -- Automation 360 ------------------------------------------------------------------------
@routes.post("/events/name/{event}")
async def send_event(request: web.Request) -> web.Response:
    state = request.app[STATE]
    data = await body(request)
    if not data.get("email") and not data.get("phone"):
        raise ApiError(400, "email or phone is required", 400)
    state.channels.events.append(
        {"event": request.match_info["event"], "data": data, "at": state.now()}
    )
    return web.json_response({"result": True})


@routes.get("/a360/autoresponders/list")
async def autoresponders(request: web.Request) -> web.Response:
    state = request.app[STATE]
    limit, offset = paging(query(request))
    rows = list(state.channels.autoresponders.values())[offset : offset + limit]
    # The list item shape is unconfirmed: we give the `autoresponder` block of the get call.
    return web.json_response(
        {
            "data": [
                {
                    "id": a.id,
                    "name": a.name,
                    "status": a.status,
                    "created": fmt_datetime(a.created),
                    "changed": fmt_datetime(a.changed),
                }
                for a in rows
            ]
        }
    )


@routes.get("/a360/autoresponders/{id}")
async def autoresponder(request: web.Request) -> web.Response:
    state = request.app[STATE]
    item = state.channels.autoresponders.get(as_int(request.match_info["id"], "id"))
    if item is None:
        raise ApiError(404, "Autoresponder not found", 404)
    return web.json_response(
        {
            "autoresponder": {
                "id": item.id,
                "name": item.name,
                "status": item.status,
                "created": fmt_datetime(item.created),
                "changed": fmt_datetime(item.changed),
            },
            "flows": item.flows,
            "starts": item.starts,
            "in_queue": item.in_queue,
            "end_count": item.end_count,
            "send_messages": item.send_messages,
            "conversions": item.conversions,
        }
    )


@routes.get("/push/websites/info/{id}")
async def website_info(request: web.Request) -> web.Response:
    state = request.app[STATE]
    website_id = as_int(request.match_info["id"], "id")
    site = state.channels.websites.get(website_id)
    if site is None:
        raise ApiError(404, "Website not found", 404)
    subscribers = [s for s in state.channels.subscriptions if s.website_id == website_id]
    return web.json_response(
        {
            "id": site.id,
            "url": site.url,
            "status": str(site.status),
            "total_subscribers": len(subscribers),
            "active_subscribers": sum(1 for s in subscribers if s.status == 1),
        }
    )
