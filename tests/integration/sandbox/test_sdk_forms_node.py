"""SendPulse's Node SDK (npm `sendpulse-api`, api/sendpulse.js), unchanged, against the sandbox.

Its one transport, ``sendRequest``, sends every call to ``'/' + path`` with
``Content-Type: application/json`` and the call's data as a JSON body, GET included, so GET
parameters (limit, offset, the SMTP and SMS date filters) arrive in the body, never in the
query string. Lists go out as PHP-serialized strings (``emails: serialize(emails)`` for
``addEmails``, ``removeEmails``, ``smtpUnsubscribeEmails``; ``email: serialize(email)`` for
``smtpSendMail``), or as ``JSON.stringify``-ed strings for the SMS phones. Each test repeats
one function's request, named in its first comment.
"""

from __future__ import annotations

import base64
import json

from connector.sandbox.books import UNSUBSCRIBED
from connector.sandbox.clock import fmt_date, fmt_datetime
from tests.integration.sandbox.conftest import Api
from tests.integration.sandbox.sdk_wire import JSON, node_call, php_serialize, send


def b64(text: str) -> str:
    # The SDK's base64(): Buffer(data).toString('base64').
    return base64.b64encode(text.encode()).decode()


async def test_get_token_json_without_authorization(api: Api) -> None:
    # getToken: sendRequest('oauth/access_token', 'POST', {grant_type, client_id,
    # client_secret}, false): a JSON body and no Authorization header.
    url = f"{api.sb.base_url}/oauth/access_token"
    good = {
        "grant_type": "client_credentials",
        "client_id": api.sb.client_id,
        "client_secret": api.sb.client_secret,
    }
    async with api.session.post(url, data=json.dumps(good), headers=JSON) as resp:
        assert resp.status == 200
        answer = await resp.json()
    assert set(answer) == {"access_token", "token_type", "expires_in"}
    api.token = answer["access_token"]
    assert await node_call(api, "GET", "addressbooks", {}) == (200, [])
    # A 401 whose `error` is invalid_client is the one the SDK stops on instead of re-fetching.
    async with api.session.post(
        url, data=json.dumps({**good, "client_secret": "wrong"}), headers=JSON
    ) as resp:
        assert resp.status == 401
        assert (await resp.json())["error"] == "invalid_client"


async def test_list_address_books_paging_in_a_get_body(api: Api) -> None:
    # listAddressBooks(callback, limit, offset): GET addressbooks, body {limit, offset}.
    first, second = api.sb.state.add_book("First"), api.sb.state.add_book("Second")
    status, rows = await node_call(api, "GET", "addressbooks", {"limit": 1, "offset": 1})
    assert status == 200
    assert [r["id"] for r in rows] == [second.id]
    status, rows = await node_call(api, "GET", "addressbooks", {})
    assert [r["id"] for r in rows] == [first.id, second.id]
    status, error = await node_call(api, "GET", "addressbooks", {"limit": 101})
    assert (status, error["error_code"]) == (422, 422)


async def test_a_get_body_that_is_not_json_is_refused(api: Api) -> None:
    status, error = await send(api, "GET", "/campaigns", data="{limit: 1", headers=JSON)
    assert (status, error) == (400, {"message": "Malformed JSON body", "error_code": 999})
    status, error = await send(api, "GET", "/campaigns", data="[1]", headers=JSON)
    assert (status, error["error_code"]) == (400, 999)


async def test_add_emails_as_a_serialized_array(api: Api) -> None:
    # addEmails(callback, id, emails): POST addressbooks/{id}/emails,
    # {emails: serialize(emails)}.
    book = api.sb.state.add_book("Leads").id
    emails = [
        {"email": "ann@example.com", "variables": {"name": "Ann", "visits": 3}},
        {"email": "bob@example.com", "variables": {"city": "Київ"}},
    ]
    payload = {"emails": php_serialize(emails)}
    status, answer = await node_call(api, "POST", f"addressbooks/{book}/emails", payload)
    assert (status, answer) == (200, {"result": True})
    rows = api.sb.state.books[book]
    assert rows.get("ann@example.com").variables == {"name": "Ann", "visits": 3}
    assert rows.get("bob@example.com").variables == {"city": "Київ"}
    assert rows.total() == 2


async def test_add_emails_with_a_cut_off_serialized_array_adds_nothing(api: Api) -> None:
    book = api.sb.state.add_book("Leads").id
    whole = php_serialize([{"email": "ann@example.com", "variables": {}}])
    for broken in (whole[:-1], whole.replace("s:15:", "s:14:"), whole + "i:1;"):
        status, error = await node_call(
            api, "POST", f"addressbooks/{book}/emails", {"emails": broken}
        )
        assert (status, error) == (422, {"message": "Argument email is invalid", "error_code": 422})
    assert api.sb.state.books[book].total() == 0


async def test_remove_emails_as_a_serialized_array(api: Api) -> None:
    # removeEmails(callback, id, emails): DELETE addressbooks/{id}/emails,
    # {emails: serialize(emails)}.
    state = api.sb.state
    book = state.add_book("Leads").id
    for email in ("ann@example.com", "bob@example.com", "cid@example.com"):
        state.add_subscriber(book, email)
    payload = {"emails": php_serialize(["ann@example.com", "cid@example.com"])}
    status, answer = await node_call(api, "DELETE", f"addressbooks/{book}/emails", payload)
    assert (status, answer) == (200, {"result": True})
    assert [r.email for r in state.books[book].iter_rows()] == ["bob@example.com"]


async def test_email_info_and_variables(api: Api) -> None:
    state = api.sb.state
    book = state.add_book("Leads").id
    state.add_subscriber(book, "ann@example.com", {"name": "Ann"})
    # updateEmailVariables(callback, id, email, variables): POST
    # addressbooks/{id}/emails/variable, {email, variables} (variables as the caller gave them).
    payload = {"email": "ann@example.com", "variables": [{"name": "city", "value": "Lviv"}]}
    status, answer = await node_call(api, "POST", f"addressbooks/{book}/emails/variable", payload)
    assert (status, answer) == (200, {"result": True})
    # getEmailInfo(callback, id, email): GET addressbooks/{id}/emails/{email} with body {}.
    status, info = await node_call(api, "GET", f"addressbooks/{book}/emails/ann@example.com", {})
    assert status == 200
    assert {v["name"]: v["value"] for v in info["variables"]} == {"name": "Ann", "city": "Lviv"}
    # getEmailGlobalInfo(callback, email): GET emails/{email} with body {}.
    status, rows = await node_call(api, "GET", "emails/ann@example.com", {})
    assert status == 200
    assert [r["book_id"] for r in rows] == [book]
    status, error = await node_call(api, "GET", "emails/nobody@example.com", {})
    assert (status, error["error_code"]) == (404, 502)


async def test_list_campaigns_paging_in_a_get_body(api: Api) -> None:
    # listCampaigns(callback, limit, offset): GET campaigns, body {limit, offset}.
    state = api.sb.state
    book = state.add_book("Leads").id
    state.add_subscriber(book, "ann@example.com")
    ids = [state.create_campaign([book], subject=f"S{i}").id for i in range(3)]
    status, rows = await node_call(api, "GET", "campaigns", {"limit": 1, "offset": 2})
    assert status == 200
    assert [r["id"] for r in rows] == ids[2:]


async def test_create_campaign_with_serialized_attachments(api: Api) -> None:
    # createCampaign(callback, senderName, senderEmail, subject, body, bookId, name,
    # attachments): POST campaigns, body base64(body), list_id the book, name '' and
    # attachments serialize(attachments) (or '' when there are none).
    state = api.sb.state
    book = state.add_book("Leads").id
    state.add_subscriber(book, "ann@example.com")
    payload = {
        "sender_name": "Shop",
        "sender_email": "sender@example.com",
        "subject": "Sale",
        "body": b64("<p>50% off</p>"),
        "list_id": book,
        "name": "",
        "attachments": php_serialize({"terms.txt": b64("Terms")}),
    }
    status, answer = await node_call(api, "POST", "campaigns", payload)
    assert status == 200
    assert answer["count"] == 1
    campaign = state.campaigns.items[answer["id"]]
    assert campaign.attachments == {"terms.txt": b64("Terms")}
    assert base64.b64decode(campaign.body) == b"<p>50% off</p>"
    status, answer = await node_call(api, "POST", "campaigns", {**payload, "attachments": ""})
    assert status == 200
    assert state.campaigns.items[answer["id"]].attachments == {}


async def test_senders_and_blacklist(api: Api) -> None:
    state = api.sb.state
    state.add_sender("news@example.com", "News")
    # removeSender(callback, senderEmail): DELETE senders, body {email}.
    status, answer = await node_call(api, "DELETE", "senders", {"email": "news@example.com"})
    assert (status, answer) == (200, {"result": True})
    assert "news@example.com" not in state.campaigns.senders
    # addToBlackList(callback, emails, comment): POST blacklist, emails base64("a,b").
    payload = {"emails": b64("x@example.com,y@example.com"), "comment": "spam"}
    assert (await node_call(api, "POST", "blacklist", payload))[0] == 200
    assert state.blacklist == {"x@example.com": "spam", "y@example.com": "spam"}
    # removeFromBlackList(callback, emails): DELETE blacklist, emails base64.
    assert (await node_call(api, "DELETE", "blacklist", {"emails": b64("x@example.com")}))[0] == 200
    assert list(state.blacklist) == ["y@example.com"]


async def test_smtp_list_emails_with_the_sdk_defaults(api: Api) -> None:
    # smtpListEmails(callback, limit, offset, fromDate, toDate, sender, recipient): GET
    # smtp/emails, body {limit, offset, from, to, sender, recipient}; every one the caller
    # leaves out is sent as 0 or ''.
    state = api.sb.state
    now = state.now()
    state.smtp.send("sender@example.com", ["ann@example.com", "bob@example.com"], "Hi", 10, now)
    defaults = {"limit": 0, "offset": 0, "from": "", "to": "", "sender": "", "recipient": ""}
    status, rows = await node_call(api, "GET", "smtp/emails", defaults)
    assert status == 200
    assert sorted(r["recipient"] for r in rows) == ["ann@example.com", "bob@example.com"]
    filtered = {**defaults, "recipient": "bob@example.com", "from": fmt_date(now)}
    status, rows = await node_call(api, "GET", "smtp/emails", filtered)
    assert [r["recipient"] for r in rows] == ["bob@example.com"]
    status, error = await node_call(api, "GET", "smtp/emails", {**defaults, "from": "yesterday"})
    assert (status, error["error_code"]) == (422, 422)


async def test_smtp_send_mail_as_a_serialized_object(api: Api) -> None:
    # smtpSendMail(callback, email): POST smtp/emails, {email: serialize(email)}, with
    # email.html replaced by base64(html) first.
    mail = {
        "html": b64("<h1>Hello</h1>"),
        "text": "Hello",
        "subject": "Welcome",
        "from": {"name": "Shop", "email": "sender@example.com"},
        "to": [{"name": "Ann", "email": "ann@example.com"}],
    }
    status, answer = await node_call(api, "POST", "smtp/emails", {"email": php_serialize(mail)})
    assert status == 200
    assert answer["result"] is True
    record = api.sb.state.smtp.by_id[answer["id"]]
    assert (record.recipient, record.subject) == ("ann@example.com", "Welcome")
    assert record.size == len("Hello") + len("<h1>Hello</h1>")
    del mail["subject"]
    status, error = await node_call(api, "POST", "smtp/emails", {"email": php_serialize(mail)})
    assert (status, error) == (422, {"message": "Argument subject missing", "error_code": 12})
    assert len(api.sb.state.smtp.sent) == 1


async def test_smtp_unsubscribe_and_back_as_serialized_arrays(api: Api) -> None:
    # smtpUnsubscribeEmails(callback, emails): POST smtp/unsubscribe,
    # {emails: serialize([{email, comment}])}.
    smtp = api.sb.state.smtp
    entries = [
        {"email": "ann@example.com", "comment": "asked"},
        {"email": "bob@example.com", "comment": ""},
    ]
    payload = {"emails": php_serialize(entries)}
    assert await node_call(api, "POST", "smtp/unsubscribe", payload) == (200, {"result": True})
    assert sorted(smtp.unsubscribes) == ["ann@example.com", "bob@example.com"]
    assert smtp.unsubscribes["ann@example.com"].comment == "asked"
    # smtpRemoveFromUnsubscribe(callback, emails): DELETE smtp/unsubscribe,
    # {emails: serialize(emails)}.
    payload = {"emails": php_serialize(["ann@example.com"])}
    assert await node_call(api, "DELETE", "smtp/unsubscribe", payload) == (200, {"result": True})
    assert list(smtp.unsubscribes) == ["bob@example.com"]


async def test_sms_phones_as_json_strings(api: Api) -> None:
    state = api.sb.state
    book = state.add_book("Phones").id
    # smsAddPhones(callback, addressbook_id, phones): POST sms/numbers,
    # {addressBookId, phones: JSON.stringify(phones)}.
    payload = {"addressBookId": book, "phones": json.dumps(["380501112233"])}
    status, answer = await node_call(api, "POST", "sms/numbers", payload)
    assert (status, answer["counters"]) == (200, {"added": 1, "exceptions": 0, "exists": 0})
    # smsAddPhonesWithVariables(callback, addressbook_id, phones): POST sms/numbers/variables,
    # the same with phones mapping each number to its variables.
    phones = {"380501112244": [[{"name": "name", "type": "string", "value": "Ann"}]]}
    payload = {"addressBookId": book, "phones": json.dumps(phones)}
    status, answer = await node_call(api, "POST", "sms/numbers/variables", payload)
    assert (status, answer[0]["counters"]["added"]) == (200, 1)
    assert state.channels.phones[book]["380501112244"]["variables"] == {"name": "Ann"}
    # smsGetPhoneInfo(callback, addressbook_id, phone): GET sms/numbers/info/{book}/{phone}.
    status, info = await node_call(api, "GET", f"sms/numbers/info/{book}/380501112244", {})
    assert (status, info[0]["data"]["variables"]) == (200, {"name": "Ann"})


async def test_sms_campaigns_send_list_and_cancel(api: Api) -> None:
    state = api.sb.state
    book = state.add_book("Phones").id
    state.channels.phones[book] = {"380501112233": {"variables": {}, "added": state.now()}}
    # smsSend(callback, sender_name, phones, body, date, transliterate, route): POST sms/send;
    # JSON.stringify drops the undefined date, transliterate and route.
    payload = {"sender": "Shop", "phones": json.dumps(["380509998877"]), "body": "Hi"}
    status, sent = await node_call(api, "POST", "sms/send", payload)
    assert (status, sent["result"]) == (200, True)
    assert state.channels.sms[sent["campaign_id"]].phones == ["380509998877"]
    # smsAddCampaign(callback, sender_name, addressbook_id, body, date, transliterate).
    later = fmt_datetime(state.now() + 86_400)
    payload = {"sender": "Shop", "addressBookId": book, "body": "Soon", "date": later}
    status, planned = await node_call(api, "POST", "sms/campaigns", payload)
    assert status == 200
    # smsGetListCampaigns(callback, date_from, date_to): GET sms/campaigns/list,
    # body {dateFrom, dateTo}.
    now = state.now()
    window = {"dateFrom": fmt_datetime(now - 60), "dateTo": fmt_datetime(now + 60)}
    status, listed = await node_call(api, "GET", "sms/campaigns/list", window)
    assert status == 200
    assert sorted(r["id"] for r in listed["data"]) == [sent["campaign_id"], planned["campaign_id"]]
    gone = {"dateFrom": fmt_datetime(now + 120), "dateTo": later}
    assert (await node_call(api, "GET", "sms/campaigns/list", gone))[1]["data"] == []
    # smsCancelCampaign(callback, campaign_id): PUT sms/campaigns/cancel/{id}, body {}.
    cancel = f"sms/campaigns/cancel/{planned['campaign_id']}"
    assert await node_call(api, "PUT", cancel, {}) == (200, {"result": True})
    assert planned["campaign_id"] not in state.channels.sms
    status, error = await node_call(api, "PUT", cancel, {})
    assert (status, error["error_code"]) == (404, 802)


async def test_unsubscribed_rows_keep_their_status_through_a_serialized_re_add(api: Api) -> None:
    # addEmails again for an address already in the list: an upsert that keeps the status.
    state = api.sb.state
    book = state.add_book("Leads").id
    state.add_subscriber(book, "ann@example.com", {"name": "Ann"})
    state.unsubscribe(book, "ann@example.com")
    payload = {"emails": php_serialize(["ann@example.com"])}
    assert (await node_call(api, "POST", f"addressbooks/{book}/emails", payload))[0] == 200
    row = state.books[book].get("ann@example.com")
    assert (row.status, row.variables) == (UNSUBSCRIBED, {"name": "Ann"})
