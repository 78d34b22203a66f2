"""The official SDKs' wire forms at the endpoints the specs made us change.

pysendpulse sends form-encoded bodies whose lists and objects are JSON strings
(``phones=json.dumps(...)``, ``email=json.dumps(...)``), and its template mail sets ``html``
and ``text`` to null; the sandbox must take them as SendPulse does.
"""

from __future__ import annotations

import json

from tests.integration.sandbox.conftest import Api


async def test_pysendpulse_phones_with_variables_form(api: Api) -> None:
    book = api.sb.state.add_book("Phones").id
    phones = {"380501112233": [[{"name": "name", "type": "string", "value": "Ann"}]]}
    form = {"addressBookId": str(book), "phones": json.dumps(phones)}
    status, data = await api.post("/sms/numbers/variables", data=form)
    assert (status, data) == (
        200,
        [{"result": True, "counters": {"added": 1, "exceptions": 0, "exists": 0}}],
    )
    assert api.sb.state.channels.phones[book]["380501112233"]["variables"] == {"name": "Ann"}


async def test_pysendpulse_phones_form_takes_a_list_only(api: Api) -> None:
    book = api.sb.state.add_book("Phones").id
    listed = {"addressBookId": str(book), "phones": json.dumps(["380501112244"])}
    assert (await api.post("/sms/numbers", data=listed))[1]["counters"]["added"] == 1
    mapped = {"addressBookId": str(book), "phones": json.dumps({"380501112255": {"a": 1}})}
    status, data = await api.post("/sms/numbers", data=mapped)
    assert (status, data["error_code"]) == (400, 11)


async def test_pysendpulse_template_mail_with_null_bodies(api: Api) -> None:
    email = {
        "subject": "Hi",
        "from": {"name": "Shop", "email": "sender@example.com"},
        "to": [{"email": "ann@example.com"}],
        "template": {"id": 42, "variables": {"name": "Ann"}},
        "html": None,
        "text": None,
    }
    status, data = await api.post("/smtp/emails", data={"email": json.dumps(email)})
    assert (status, data["result"]) == (200, True)
    del email["subject"]
    status, data = await api.post("/smtp/emails", data={"email": json.dumps(email)})
    assert (status, data) == (422, {"message": "Argument subject missing", "error_code": 12})


async def test_pysendpulse_leading_slash_paths(api: Api) -> None:
    # pysendpulse joins "https://api.sendpulse.com/" and "/sms/campaigns/info/1".
    status, data = await api.get("//sms/campaigns/info/999")
    assert (status, data["error_code"]) == (404, 802)


async def test_pysendpulse_double_slash_posts_with_a_form_body(api: Api) -> None:
    # pysendpulse.py push_create and push_set_subscription_state post forms to
    # '/push/tasks' and '/push/subscriptions/state', joined to the base URL with a '/'.
    state = api.sb.state
    site = state.add_push_website("https://shop.example.com")
    subscription = state.add_push_subscription(site.id)
    task = {"title": "Sale", "website_id": str(site.id), "body": "50% off", "ttl": "3600"}
    status, data = await api.post("//push/tasks", data=task)
    assert (status, data["result"]) == (200, True)
    assert state.channels.push_tasks[data["id"]].ttl == 3600
    form = {"id": str(subscription.id), "state": "0"}
    assert await api.post("//push/subscriptions/state", data=form) == (200, {"result": True})
    assert subscription.status == 0
    status, data = await api.post("//push/subscriptions/state", data={**form, "state": "7"})
    assert (status, data["error_code"]) == (422, 422)
