"""Mailing lists (address books), their subscribers, per-email look-ups and the blacklist."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from aiohttp import web

from connector.sandbox.app import STATE
from connector.sandbox.books import ACTIVE, CONFIRMATION_REQUESTED, STATUS_EXPLAIN, Book
from connector.sandbox.clock import fmt_datetime
from connector.sandbox.state import State
from connector.sandbox.wire import (
    ApiError,
    as_bool,
    as_list,
    body,
    paging,
    payload,
    query,
    unjson,
)

routes = web.RouteTableDef()
# No quotes, braces, brackets, colons or semicolons: a list that failed to decode (a cut-off
# serialized or JSON array) must not pass for an address.
EMAIL = re.compile(r'^[^@\s"{}\[\]:;,]+@[^@\s"{}\[\]:;,]+\.[^@\s"{}\[\]:;,]+$')
MAX_BATCH = 100


def book_or_404(state: State, raw_id: str) -> Book:
    try:
        book = state.books.get(int(raw_id))
    except ValueError:
        book = None
    if book is None:
        raise ApiError(404, "Book not found", 213)
    return book


def typed_variables(book: Book | None, variables: dict[str, Any]) -> list[dict[str, Any]]:
    types = book.variables if book is not None else {}
    return [
        {"name": name, "type": types.get(name, "string"), "value": value}
        for name, value in variables.items()
    ]


def _email_list(data: dict[str, Any]) -> list[str]:
    emails = [str(e).strip() for e in as_list(data.get("emails")) if str(e).strip()]
    if not emails:
        raise ApiError(400, "No emails given", 303)
    if len(emails) > MAX_BATCH:
        raise ApiError(422, f"The emails may not have more than {MAX_BATCH} items.", 422)
    return emails


# -- books ---------------------------------------------------------------------------------
@routes.get("/addressbooks")
async def list_books(request: web.Request) -> web.Response:
    state = request.app[STATE]
    limit, offset = paging(query(request))
    books = list(state.books.values())[offset : offset + limit]
    return web.json_response([book.summary() for book in books])


@routes.get("/addressbooks/{id}")
async def get_book(request: web.Request) -> web.Response:
    book = book_or_404(request.app[STATE], request.match_info["id"])
    return web.json_response([book.summary()])


@routes.post("/addressbooks")
async def create_book(request: web.Request) -> web.Response:
    state = request.app[STATE]
    data = await body(request)
    name = str(data.get("bookName") or "").strip()
    if not name:
        raise ApiError(422, "Argument bookName missing", 422)
    if state.book_by_name(name) is not None:
        raise ApiError(422, "Book name already in use", 203)
    return web.json_response({"id": state.add_book(name).id})


@routes.put("/addressbooks/{id}")
async def rename_book(request: web.Request) -> web.Response:
    state = request.app[STATE]
    book = book_or_404(state, request.match_info["id"])
    name = str((await body(request)).get("name") or "").strip()
    if not name:
        raise ApiError(400, "The name field is required", 400)
    other = state.book_by_name(name)
    if other is not None and other is not book:
        raise ApiError(422, "Book name already in use", 203)
    book.name = name
    return web.json_response({"result": True})


@routes.delete("/addressbooks/{id}")
async def delete_book(request: web.Request) -> web.Response:
    state = request.app[STATE]
    book = book_or_404(state, request.match_info["id"])
    if state.book_in_active_campaign(book.id):
        raise ApiError(422, "The book is used by a campaign that is being sent", 422)
    state.delete_book(book.id)
    return web.json_response({"result": True})


@routes.get("/addressbooks/{id}/variables")
async def book_variables(request: web.Request) -> web.Response:
    book = book_or_404(request.app[STATE], request.match_info["id"])
    return web.json_response([{"name": n, "type": t} for n, t in book.variables.items()])


@routes.get("/addressbooks/{id}/variables/{name}/{value}")
async def emails_by_variable(request: web.Request) -> web.Response:
    book = book_or_404(request.app[STATE], request.match_info["id"])
    name, value = request.match_info["name"], request.match_info["value"]
    found = [
        {"email": r.email, "status": r.status, "status_explain": STATUS_EXPLAIN.get(r.status)}
        for r in book.iter_rows()
        if name in r.variables and str(r.variables[name]) == value
    ]
    return web.json_response(found)


@routes.get("/addressbooks/{id}/cost")
async def book_cost(request: web.Request) -> web.Response:
    book = book_or_404(request.app[STATE], request.match_info["id"])
    active = book.total(active=True)
    return web.json_response(
        {
            "cur": "USD",
            "sent_emails_qty": active,
            "overdraftAllEmailsPrice": 0,
            "addressesDeltaFromBalance": 0,
            "addressesDeltaFromTariff": 0,
            "max_emails_per_task": active,
            "result": True,
        }
    )


# -- subscribers in a book -----------------------------------------------------------------
def _active_filter(params: dict[str, Any]) -> bool | None:
    if "active" in params and as_bool(params["active"]):
        return True
    if "not_active" in params and as_bool(params["not_active"]):
        return False
    return None


@routes.get("/addressbooks/{id}/emails")
async def list_emails(request: web.Request) -> web.Response:
    book = book_or_404(request.app[STATE], request.match_info["id"])
    params = query(request)
    limit, offset = paging(params)
    order = str(params.get("order") or "asc").lower()
    if order not in ("asc", "desc"):
        raise ApiError(422, "The selected order is invalid.", 422)
    rows = book.page(limit, offset, desc=order == "desc", active=_active_filter(params))
    return web.json_response([row.listing() for row in rows])


@routes.get("/addressbooks/{id}/emails/total")
async def total_emails(request: web.Request) -> web.Response:
    book = book_or_404(request.app[STATE], request.match_info["id"])
    return web.json_response({"total": book.total(_active_filter(query(request)))})


@routes.get("/addressbooks/{id}/emails/{email}")
async def email_in_book(request: web.Request) -> web.Response:
    book = book_or_404(request.app[STATE], request.match_info["id"])
    row = book.get(request.match_info["email"])
    if row is None:
        raise ApiError(404, "Email not found", 502)
    answer: dict[str, Any] = {
        "email": row.email,
        "abook_id": str(book.id),
        "status": row.status,
        "status_explain": STATUS_EXPLAIN.get(row.status, "Error"),
        # The file types every value as a string here, whatever the variable's type.
        "variables": [
            {**entry, "value": str(entry["value"])}
            for entry in typed_variables(book, row.variables)
        ],
    }
    if row.phone:
        answer["phone"] = row.phone
    return web.json_response(answer)


def _entries(raw: Any) -> list[tuple[str, dict[str, Any]]]:
    entries: list[tuple[str, dict[str, Any]]] = []
    for item in as_list(raw):
        item = unjson(item)
        if isinstance(item, dict):
            variables = unjson(item.get("variables")) or {}
            if isinstance(variables, list):
                variables = {
                    v.get("name"): v.get("value") for v in variables if isinstance(v, dict)
                }
            if not isinstance(variables, dict):
                raise ApiError(400, "Bad variables", 731)
            entries.append((str(item.get("email") or "").strip(), variables))
        else:
            entries.append((str(item).strip(), {}))
    return entries


@routes.post("/addressbooks/{id}/emails")
async def add_emails(request: web.Request) -> web.Response:
    state = request.app[STATE]
    book = book_or_404(state, request.match_info["id"])
    data = await body(request)
    entries = _entries(data.get("emails"))
    # Refusals as the file documents them for this call: HTTP 422 with its messages.
    if not entries:
        raise ApiError(422, "Argument emails missing", 422)
    valid = [(email, variables) for email, variables in entries if EMAIL.match(email)]
    if not valid:
        raise ApiError(422, "Argument email is invalid", 422)
    status = ACTIVE
    if data.get("confirmation") == "force":
        if not data.get("sender_email"):
            raise ApiError(422, "Argument sender_email missing", 422)
        status = CONFIRMATION_REQUESTED
    quota = state.settings.subscriber_quota
    if quota is not None:
        new = sum(1 for email, _ in valid if book.get(email) is None)
        if state.subscriber_count() + new > quota:
            raise ApiError(403, "Your tariff does not allow adding more subscribers", 3030303030)
    update = not as_bool(data.get("dont_update", False))
    webhook = not as_bool(data.get("disable_webhook", False))
    for email, variables in valid:
        phone = next((str(v) for k, v in variables.items() if k.lower() == "phone"), None)
        state.add_subscriber(
            book.id, email, variables, status=status, update=update, phone=phone, webhook=webhook
        )
    return web.json_response({"result": True})


@routes.delete("/addressbooks/{id}/emails")
async def delete_emails(request: web.Request) -> web.Response:
    state = request.app[STATE]
    book = book_or_404(state, request.match_info["id"])
    for email in _email_list(await body(request)):
        state.remove_subscriber(book.id, email)
    return web.json_response({"result": True})


@routes.post("/addressbooks/{id}/emails/unsubscribe")
async def unsubscribe_emails(request: web.Request) -> web.Response:
    state = request.app[STATE]
    book = book_or_404(state, request.match_info["id"])
    for email in _email_list(await body(request)):
        state.unsubscribe(book.id, email)
    return web.json_response({"result": True})


@routes.post("/addressbooks/{id}/emails/variable")
async def set_email_variables(request: web.Request) -> web.Response:
    state = request.app[STATE]
    book = book_or_404(state, request.match_info["id"])
    data = await body(request)
    email = str(data.get("email") or "").strip()
    raw = unjson(data.get("variables"))
    if isinstance(raw, dict):
        variables = dict(raw)
    elif isinstance(raw, list) and all(isinstance(v, dict) and "name" in v for v in raw):
        variables = {str(v["name"]): v.get("value") for v in raw}
    else:
        raise ApiError(400, "Bad variables", 731)
    if not email or book.get(email) is None:
        raise ApiError(404, "Email not found", 502)
    state.set_variables(book.id, email, variables)
    return web.json_response({"result": True})


# -- one email across books ----------------------------------------------------------------
def _email_rows(state: State, email: str) -> list[dict[str, Any]]:
    rows = []
    for book in state.books.values():
        row = book.get(email)
        if row is not None:
            rows.append(
                {
                    "book_id": book.id,
                    "email": row.email,
                    "status": row.status,
                    "variables": typed_variables(book, row.variables),
                }
            )
    return rows


@routes.get("/emails/{email}")
async def email_info(request: web.Request) -> web.Response:
    rows = _email_rows(request.app[STATE], request.match_info["email"])
    if not rows:
        raise ApiError(404, "Email not found", 502)
    return web.json_response(rows)


@routes.get("/emails/{email}/details")
async def email_details(request: web.Request) -> web.Response:
    state = request.app[STATE]
    details = []
    for book in state.books.values():
        row = book.get(request.match_info["email"])
        if row is not None:
            details.append(
                {
                    "list_name": book.name,
                    "list_id": book.id,
                    "add_date": fmt_datetime(row.add_date),
                    "source": row.source,
                }
            )
    if not details:
        raise ApiError(404, "Email not found", 502)
    return web.json_response(details)


@routes.post("/emails")
async def emails_info(request: web.Request) -> web.Response:
    state = request.app[STATE]
    data = await payload(request)
    # The file's body is `{"emails": [...]}`; the PHP SDK's getEmailsGlobalInfo posts the
    # list itself.
    raw = data if isinstance(data, list) else data.get("emails")
    emails = [str(e).strip() for e in as_list(raw) if str(e).strip()]
    if not emails:
        raise ApiError(400, "No emails given", 303)
    return web.json_response({email: _email_rows(state, email) for email in emails})


@routes.delete("/emails/{email}")
async def delete_everywhere(request: web.Request) -> web.Response:
    request.app[STATE].remove_everywhere(request.match_info["email"])
    return web.json_response({"result": True})


# -- blacklist -----------------------------------------------------------------------------
def _base64_emails(data: dict[str, Any]) -> list[str]:
    raw = data.get("emails")
    if not isinstance(raw, str) or not raw:
        raise ApiError(400, "No emails given", 303)
    try:
        text = base64.b64decode(raw, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ApiError(400, "emails must be a Base64 comma-separated list", 999) from exc
    return [e.strip().lower() for e in text.split(",") if e.strip()]


@routes.get("/blacklist")
async def get_blacklist(request: web.Request) -> web.Response:
    return web.json_response(list(request.app[STATE].blacklist))


@routes.post("/blacklist")
async def add_blacklist(request: web.Request) -> web.Response:
    state = request.app[STATE]
    data = await body(request)
    comment = str(data.get("comment") or "")
    for email in _base64_emails(data):
        state.blacklist[email] = comment
    return web.json_response({"result": True})


@routes.delete("/blacklist")
async def remove_blacklist(request: web.Request) -> web.Response:
    state = request.app[STATE]
    for email in _base64_emails(await body(request)):
        state.blacklist.pop(email, None)
    return web.json_response({"result": True})
