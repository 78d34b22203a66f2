"""CRM (`/crm/v1`): contacts and deals get-list with filters and sorting, and creation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from connector.sandbox.app import STATE
from connector.sandbox.clock import fmt_date, parse_datetime
from connector.sandbox.crm import Deal
from connector.sandbox.wire import ApiError, as_int, as_list, body, paging, unjson

routes = web.RouteTableDef()
EXPRESSIONS = ("eq", "neq", "gt", "gte", "lt", "lte", "like", "in")
DEAL_FIELDS = (
    "id",
    "createdAt",
    "updatedAt",
    "pipelineId",
    "stepId",
    "name",
    "price",
    "currency",
    "responsibleId",
)
# The contacts list sorts only by what the file allows (attributeId needs attributes, which
# the sandbox does not keep).
CONTACT_SORT = {
    "id": "id",
    "created_at": "created",
    "first_name": "first_name",
    "responsible_id": "responsible_id",
}


def _sort(raw: Any, allowed: dict[str, str]) -> tuple[str, bool]:
    sort = unjson(raw) or {}
    if not isinstance(sort, dict):
        raise ApiError(422, "sortBy must be an object", 422)
    name = str(sort.get("fieldName") or "id")
    if name not in allowed:
        raise ApiError(422, f"sortBy.fieldName must be one of {', '.join(allowed)}", 422)
    direction = str(sort.get("direction") or "asc").lower()
    if direction not in ("asc", "desc"):
        raise ApiError(422, "sortBy.direction must be asc or desc", 422)
    return allowed[name], direction == "desc"


def _day(raw: Any, name: str) -> str | None:
    if raw in (None, ""):
        return None
    if parse_datetime(str(raw)) is None:
        raise ApiError(422, f"{name} must be a date YYYY-MM-DD", 422)
    return str(raw)[:10]


@routes.post("/crm/v1/contacts/get-list")
async def contacts_list(request: web.Request) -> web.Response:
    state = request.app[STATE]
    data = await body(request)
    limit, offset = paging(data, default_limit=10, max_limit=100)
    key, desc = _sort(data.get("sortBy"), CONTACT_SORT)
    bounds = {name: _day(data.get(name), name) for name in ("from", "to", "updateFrom", "updateTo")}
    rows = []
    for contact in state.crm.contacts.values():
        created, updated = fmt_date(contact.created), fmt_date(contact.updated)
        if bounds["from"] and created < bounds["from"]:
            continue
        if bounds["to"] and created > bounds["to"]:
            continue
        if bounds["updateFrom"] and updated < bounds["updateFrom"]:
            continue
        if bounds["updateTo"] and updated > bounds["updateTo"]:
            continue
        rows.append(contact)
    rows.sort(key=lambda c: (getattr(c, key), c.id), reverse=desc)
    page = [c.json() for c in rows[offset : offset + limit]]
    return web.json_response({"data": {"list": page, "total": len(rows)}})


def _matcher(spec: Any) -> Callable[[Deal], bool]:
    if not isinstance(spec, dict):
        raise ApiError(422, "Each filter is {name, expression, value}", 422)
    name, expression, value = spec.get("name"), spec.get("expression"), spec.get("value")
    if name not in DEAL_FIELDS:
        raise ApiError(422, f"Unknown filter field {name!r}", 422)
    if expression not in EXPRESSIONS:
        raise ApiError(422, f"Unknown filter expression {expression!r}", 422)

    def coerce(raw: Any) -> Any:
        if name in ("createdAt", "updatedAt"):
            parsed = parse_datetime(str(raw))
            if parsed is None:
                raise ApiError(422, f"{name} filter wants a date", 422)
            return parsed
        if name in ("name", "currency"):
            return str(raw)
        try:
            return float(raw)
        except (TypeError, ValueError) as exc:
            raise ApiError(422, f"{name} filter wants a number", 422) from exc

    if expression == "in":
        wanted = [coerce(v) for v in as_list(value)]
        return lambda deal: deal.field(str(name)) in wanted
    if expression == "like":
        needle = str(value).strip("%").lower()
        return lambda deal: needle in str(deal.field(str(name))).lower()
    target = coerce(value)
    compare: dict[str, Callable[[Any, Any], bool]] = {
        "eq": lambda a, b: a == b,
        "neq": lambda a, b: a != b,
        "gt": lambda a, b: a > b,
        "gte": lambda a, b: a >= b,
        "lt": lambda a, b: a < b,
        "lte": lambda a, b: a <= b,
    }
    op = compare[str(expression)]
    return lambda deal: op(deal.field(str(name)), target)


@routes.post("/crm/v1/deals/get-list")
async def deals_list(request: web.Request) -> web.Response:
    state = request.app[STATE]
    data = await body(request)
    limit, offset = paging(data, default_limit=10, max_limit=100)
    fields = {f: f for f in DEAL_FIELDS} | {"created_at": "createdAt", "updated_at": "updatedAt"}
    key, desc = _sort(data.get("sortBy"), fields)
    matchers = [_matcher(unjson(f)) for f in as_list(data.get("filter"))]
    rows = [d for d in state.crm.deals.values() if all(m(d) for m in matchers)]
    rows.sort(key=lambda d: (d.field(key), d.id), reverse=desc)
    page = [d.json() for d in rows[offset : offset + limit]]
    return web.json_response({"data": page, "meta": {"total": len(rows)}})


@routes.post("/crm/v1/contacts/create")
async def create_contact(request: web.Request) -> web.Response:
    state = request.app[STATE]
    data = await body(request)
    first, last = str(data.get("firstName") or "").strip(), str(data.get("lastName") or "").strip()
    if data.get("responsibleId") in (None, ""):
        raise ApiError(422, "responsibleId is required", 422)
    responsible = as_int(data.get("responsibleId"), "responsibleId")
    contact = state.crm.add_contact(first, last, state.now(), responsible_id=responsible)
    return web.json_response({"data": contact.json()})


def _crm_contact(request: web.Request) -> Any:
    state = request.app[STATE]
    contact = state.crm.contacts.get(as_int(request.match_info["id"], "contactId"))
    if contact is None:
        raise ApiError(404, "Contact not found", 404)
    return contact


@routes.post("/crm/v1/contacts/{id}/emails")
async def add_contact_emails(request: web.Request) -> web.Response:
    contact = _crm_contact(request)
    data = await body(request)
    added = []
    for entry in as_list(data.get("emails")):
        entry = unjson(entry)
        email = str(entry.get("email") or "") if isinstance(entry, dict) else ""
        if not email:
            raise ApiError(422, "emails: each item is {email, isMain}", 422)
        if entry.get("isMain"):
            contact.emails.insert(0, email)
        else:
            contact.emails.append(email)
        added.append(email)
    if not added:
        raise ApiError(422, "emails is required", 422)
    contact.updated = request.app[STATE].now()
    rows = [row for row in contact.json()["emails"] if row["email"] in added]
    return web.json_response({"data": rows})


@routes.post("/crm/v1/contacts/{id}/phones")
async def add_contact_phone(request: web.Request) -> web.Response:
    contact = _crm_contact(request)
    data = await body(request)
    phone = str(data.get("phone") or "").strip()
    if not phone:
        raise ApiError(422, "phone is required", 422)
    contact.phones.append(phone)
    contact.updated = request.app[STATE].now()
    row = next(r for r in contact.json()["phones"] if r["phone"] == phone)
    return web.json_response({"data": row})


@routes.post("/crm/v1/deals")
async def create_deal(request: web.Request) -> web.Response:
    state = request.app[STATE]
    data = await body(request)
    name = str(data.get("name") or "").strip()
    if not name:
        raise ApiError(422, "name is required", 422)
    pipeline = as_int(data.get("pipelineId"), "pipelineId")
    step = as_int(data.get("stepId"), "stepId")
    if step not in state.crm.steps.get(pipeline, []):
        raise ApiError(422, "Unknown pipelineId or stepId", 422)
    contacts = [as_int(c, "contact") for c in as_list(data.get("contact"))]
    missing = [c for c in contacts if c not in state.crm.contacts]
    if missing:
        raise ApiError(422, f"Unknown contact ids {missing}", 422)
    try:
        price = float(data.get("price") or 0)
    except (TypeError, ValueError) as exc:
        raise ApiError(422, "price must be a number", 422) from exc
    deal = state.crm.add_deal(
        name,
        state.now(),
        pipeline_id=pipeline,
        step_id=step,
        price=price,
        currency=str(data.get("currency") or "USD"),
        contacts=contacts,
    )
    return web.json_response({"data": deal.json()})


@routes.get("/crm/v1/pipelines/{id}")
async def pipeline(request: web.Request) -> web.Response:
    """The fixed pipeline 1 and its steps (the file's `Pipeline`, the fields we keep)."""
    state = request.app[STATE]
    pipeline_id = as_int(request.match_info["id"], "pipelineId")
    steps = state.crm.steps.get(pipeline_id)
    if steps is None:
        raise ApiError(404, "Pipeline not found", 404)
    data = {
        "id": pipeline_id,
        "name": f"Pipeline {pipeline_id}",
        "steps": [
            {"id": step, "pipelineId": pipeline_id, "name": f"Step {step}"} for step in steps
        ],
    }
    return web.json_response({"data": data})
