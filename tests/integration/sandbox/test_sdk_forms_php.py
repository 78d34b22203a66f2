"""SendPulse's PHP SDK (Packagist `sendpulse/rest-api`), unchanged, against the sandbox.

Three generations of one repository, each with its own transport:
- 1.x `src/ApiClient.php` (`sendRequest` over curl): `$apiUrl . '/' . $path`, so paths given
  with a leading slash go out with two; GET data as `http_build_query` in the query string;
  any other method's data as an `http_build_query` form, whose nested arrays are bracketed
  keys (`variables[0][name]=...`); `removeEmails` and `smtpSendMail` put `serialize()`-d
  arrays in a form field.
- 2.x `src/ApiClient.php` (the same class, JSON since 2.0): GET data in the query string,
  any other method's data as `json_encode($data)`, which is `[]` for a call with none;
  `addEmails` and the SMS calls put `json_encode`-d lists in a JSON field, the SMTP
  unsubscribe calls `serialize()`-d ones.
- 3.x `src/Client.php` with generated `src/Generated/Operation/*` requests: the token call is
  a form (`src/Auth/TokenManager.php`), query strings come from `http_build_query` (booleans as
  1/0, arrays as `status[0]=...`), path parameters are `rawurlencode`-d, a body is sent only
  when there is one.
Each test repeats one function's request, named in its first comment.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from pathlib import Path

from connector.sandbox.books import ACTIVE, CONFIRMATION_REQUESTED, UNSUBSCRIBED
from connector.sandbox.campaigns import NEW, SENT
from connector.sandbox.clock import fmt_date
from connector.sandbox.exchanges import RECORD_ENV
from tests.integration.sandbox.conftest import Api
from tests.integration.sandbox.sdk_wire import (
    FORM,
    http_build_query,
    php1_call,
    php2_call,
    php3_call,
    php_json,
    php_serialize,
    send,
)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# -- 3.x ---------------------------------------------------------------------------------------
async def test_3x_token_is_a_form_and_the_reply_has_the_three_fields(api: Api) -> None:
    # Auth/TokenManager::fetchAndStore: POST /oauth/access_token, Content-Type
    # application/x-www-form-urlencoded, http_build_query of grant_type, client_id and
    # client_secret; a reply missing access_token, token_type or expires_in is refused.
    form = {
        "grant_type": "client_credentials",
        "client_id": api.sb.client_id,
        "client_secret": api.sb.client_secret,
    }
    api.token = None
    status, answer = await send(
        api, "POST", "/oauth/access_token", data=http_build_query(form), headers=FORM
    )
    assert status == 200
    assert set(answer) == {"access_token", "token_type", "expires_in"}
    assert (answer["token_type"], answer["expires_in"]) == ("Bearer", 3600)
    # Auth/OAuthAuth: `Authorization: Bearer <token>` on every call (Client::withAuth).
    api.token = answer["access_token"]
    assert await php3_call(api, "GET", "/addressbooks") == (200, [])
    bad = http_build_query({**form, "client_secret": "wrong"})
    status, error = await send(api, "POST", "/oauth/access_token", data=bad, headers=FORM)
    assert (status, error["error"]) == (401, "invalid_client")
    # Auth/ApiKeyAuth: an API key goes out as the same `Bearer` header and is never refreshed.
    api.token = api.sb.state.auth.add_api_key(api.sb.client_id)
    api.sb.clock.advance(7 * 86_400)
    assert await php3_call(api, "GET", "/addressbooks") == (200, [])


async def test_3x_subscribers_with_boolean_filters(api: Api) -> None:
    state = api.sb.state
    book = state.add_book("Leads").id
    for email in ("ann@example.com", "bob@example.com", "cid@example.com"):
        state.add_subscriber(book, email)
    state.unsubscribe(book, "bob@example.com")
    # Operation/Email/GetEmailsFromMailingList: /addressbooks/{id}/emails?limit=&offset=
    # &order=&active=&not_active=, nulls dropped, true sent as 1 and false as 0.
    uri = f"/addressbooks/{book}/emails"
    status, rows = await php3_call(api, "GET", uri, {"limit": 10, "order": "desc", "active": True})
    assert status == 200
    assert [r["email"] for r in rows] == ["cid@example.com", "ann@example.com"]
    status, rows = await php3_call(api, "GET", uri, {"active": False, "not_active": True})
    assert [(r["email"], r["status"]) for r in rows] == [("bob@example.com", UNSUBSCRIBED)]
    status, rows = await php3_call(api, "GET", uri, {"active": False, "not_active": False})
    assert len(rows) == 3
    # Operation/Email/GetEmailsTotalCount: /addressbooks/{id}/emails/total?active=1.
    total = f"/addressbooks/{book}/emails/total"
    assert await php3_call(api, "GET", total, {"active": True}) == (200, {"total": 2})
    assert await php3_call(api, "GET", total, {"active": False}) == (200, {"total": 3})
    status, error = await php3_call(api, "GET", uri, {"order": "sideways"})
    assert (status, error["error_code"]) == (422, 422)


async def test_3x_email_in_the_path_is_rawurlencoded(api: Api) -> None:
    # Operation/Email/GetEmailFromList: /addressbooks/{id}/emails/{email} with
    # rawurlencode($email), so `@` arrives as %40 and `+` as %2B.
    state = api.sb.state
    book = state.add_book("Leads").id
    state.add_subscriber(book, "ann+news@example.com", {"name": "Ann"})
    status, info = await php3_call(
        api, "GET", f"/addressbooks/{book}/emails/ann%2Bnews%40example.com"
    )
    assert status == 200
    assert (info["email"], info["status"]) == ("ann+news@example.com", ACTIVE)
    status, error = await php3_call(api, "GET", f"/addressbooks/{book}/emails/bob%40example.com")
    assert (status, error["error_code"]) == (404, 502)


async def test_3x_campaign_statuses_as_a_bracketed_array(api: Api) -> None:
    # Operation/Email/GetCampaigns: /campaigns?limit=&offset=&order=&status[0]=&status[1]=
    # &planed=, http_build_query numbering the array's items in brackets.
    state = api.sb.state
    book = state.add_book("Leads").id
    state.add_subscriber(book, "ann@example.com")
    sent = state.create_campaign([book], subject="Sent").id
    # Review then sending (60 + 300 s) take it to "sent"; the token lives an hour.
    api.sb.clock.advance(400)
    fresh = state.create_campaign([book], subject="Fresh").id
    query = {"status": [SENT], "planed": False}
    assert "status%5B0%5D=3" in http_build_query(query)
    status, rows = await php3_call(api, "GET", "/campaigns", query)
    assert status == 200
    assert [r["id"] for r in rows] == [sent]
    status, rows = await php3_call(
        api, "GET", "/campaigns", {"status": [NEW, SENT], "order": "desc"}
    )
    assert [r["id"] for r in rows] == [fresh, sent]
    status, error = await php3_call(api, "GET", "/campaigns", {"status": ["sent"]})
    assert (status, error["error_code"]) == (422, 422)


async def test_3x_dialogs_paged_by_size_skip_and_search_after(api: Api) -> None:
    # Operation/Chatbot/GetDialogs: /chatbots/dialogs?size=&skip=&search_after=&order=.
    state = api.sb.state
    bot = state.chatbots.add_bot("telegram", "Shop bot", state.now())
    contacts = [
        state.chatbots.add_contact(bot.id, name, state.now() + i)
        for i, name in enumerate(("Ann", "Bob", "Cid"))
    ]
    status, answer = await php3_call(api, "GET", "/chatbots/dialogs", {"size": 2, "order": "asc"})
    assert (status, answer["success"]) == (200, True)
    first = answer["data"]["list"]
    assert [d["contact"]["id"] for d in first] == [c.id for c in contacts[:2]]
    after = {"size": 2, "order": "asc", "search_after": answer["data"]["search_after"]}
    status, answer = await php3_call(api, "GET", "/chatbots/dialogs", after)
    assert [d["contact"]["id"] for d in answer["data"]["list"]] == [contacts[2].id]
    status, answer = await php3_call(
        api, "GET", "/chatbots/dialogs", {"size": 1, "skip": 1, "order": "asc"}
    )
    assert [d["contact"]["id"] for d in answer["data"]["list"]] == [contacts[1].id]


# -- 2.x ---------------------------------------------------------------------------------------
async def test_2x_add_emails_as_a_json_string_with_double_opt_in(api: Api) -> None:
    # ApiClient::addEmails($bookID, $emails, $additionalParams): POST addressbooks/{id}/emails,
    # json_encode(['emails' => json_encode($emails)] + $additionalParams).
    state = api.sb.state
    book = state.add_book("Leads").id
    emails = [{"email": "ann@example.com", "variables": {"site": "https://shop.example.com/a"}}]
    data = {
        "emails": php_json(emails),
        "confirmation": "force",
        "sender_email": "sender@example.com",
    }
    status, answer = await php2_call(api, "POST", f"addressbooks/{book}/emails", data)
    assert (status, answer) == (200, {"result": True})
    row = state.books[book].get("ann@example.com")
    assert (row.status, row.variables) == (
        CONFIRMATION_REQUESTED,
        {"site": "https://shop.example.com/a"},
    )
    del data["sender_email"]
    status, error = await php2_call(api, "POST", f"addressbooks/{book}/emails", data)
    assert (status, error["error_code"]) == (422, 422)


async def test_2x_remove_emails_and_global_info(api: Api) -> None:
    state = api.sb.state
    book = state.add_book("Leads").id
    for email in ("ann@example.com", "bob@example.com"):
        state.add_subscriber(book, email)
    # ApiClient::removeEmails($bookID, $emails): DELETE addressbooks/{id}/emails,
    # {"emails": [...]} (a JSON list since 2.0; 1.x serialized it).
    status, answer = await php2_call(
        api, "DELETE", f"addressbooks/{book}/emails", {"emails": ["ann@example.com"]}
    )
    assert (status, answer) == (200, {"result": True})
    assert [r.email for r in state.books[book].iter_rows()] == ["bob@example.com"]
    # ApiClient::getEmailsGlobalInfo($emails): POST emails with the list itself as the body.
    status, info = await php2_call(api, "POST", "emails", ["bob@example.com", "ann@example.com"])
    assert status == 200
    assert [row["book_id"] for row in info["bob@example.com"]] == [book]
    assert info["ann@example.com"] == []
    status, error = await send(
        api, "POST", "/emails", data="[]", headers={"Content-Type": "application/json"}
    )
    assert (status, error["error_code"]) == (400, 303)


async def test_2x_calls_without_data_send_an_empty_json_array(api: Api) -> None:
    state = api.sb.state
    book = state.add_book("Leads").id
    state.add_subscriber(book, "ann@example.com")
    planned = state.create_campaign([book], send_date=state.now() + 86_400).id
    # ApiClient::cancelCampaign($id): delete('campaigns/' . $id), body `[]`.
    assert await php2_call(api, "DELETE", f"campaigns/{planned}") == (200, {"result": True})
    assert planned not in state.campaigns.items
    # ApiClient::removeAddressBook($id): delete('addressbooks/' . $id), body `[]`.
    assert await php2_call(api, "DELETE", f"addressbooks/{book}") == (200, {"result": True})
    assert book not in state.books
    # A body that is a list with something in it is still no object.
    status, error = await send(
        api, "POST", "/campaigns", data='["Sale"]', headers={"Content-Type": "application/json"}
    )
    assert (status, error) == (
        400,
        {"message": "The body must be a JSON object", "error_code": 999},
    )
    assert state.campaigns.items == {}


async def test_2x_smtp_send_list_and_unsubscribe(api: Api) -> None:
    smtp = api.sb.state.smtp
    # ApiClient::smtpSendMail($email): POST smtp/emails, {"email": {...}} with html
    # base64-encoded (an object since 2.0).
    mail = {
        "html": b64("<p>Hi</p>"),
        "text": "Hi",
        "subject": "Hello",
        "from": {"name": "Shop", "email": "sender@example.com"},
        "to": [{"name": "Ann", "email": "ann@example.com"}],
    }
    status, answer = await php2_call(api, "POST", "smtp/emails", {"email": mail})
    assert (status, answer["result"]) == (200, True)
    assert smtp.by_id[answer["id"]].recipient == "ann@example.com"
    # ApiClient::smtpListEmails(): get('smtp/emails', [limit => 0, offset => 0, from => '',
    # to => '', sender => '', recipient => '', country => 'off']).
    defaults = {
        "limit": 0,
        "offset": 0,
        "from": "",
        "to": "",
        "sender": "",
        "recipient": "",
        "country": "off",
    }
    status, rows = await php2_call(api, "GET", "smtp/emails", defaults)
    assert (status, [r["id"] for r in rows]) == (200, [answer["id"]])
    status, rows = await php2_call(api, "GET", "smtp/emails", {**defaults, "to": "2020-01-01"})
    assert (status, rows) == (200, [])
    # ApiClient::smtpUnsubscribeEmails($emails): post('smtp/unsubscribe',
    # ['emails' => serialize($emails)]).
    entries = [{"email": "ann@example.com", "comment": "asked"}]
    data = {"emails": php_serialize(entries)}
    assert await php2_call(api, "POST", "smtp/unsubscribe", data) == (200, {"result": True})
    assert smtp.unsubscribes["ann@example.com"].comment == "asked"
    # ApiClient::smtpRemoveFromUnsubscribe($emails): delete('smtp/unsubscribe',
    # ['emails' => serialize($emails)]).
    data = {"emails": php_serialize(["ann@example.com"])}
    assert await php2_call(api, "DELETE", "smtp/unsubscribe", data) == (200, {"result": True})
    assert smtp.unsubscribes == {}


async def test_2x_push_task_with_the_default_ttl_of_zero(api: Api) -> None:
    # ApiClient::createPushTask($taskInfo): post('push/tasks', $taskInfo) with ttl set to 0
    # when the caller gave none.
    state = api.sb.state
    site = state.add_push_website("https://shop.example.com")
    task = {"title": "Sale", "website_id": site.id, "body": "50% off", "ttl": 0}
    status, answer = await php2_call(api, "POST", "push/tasks", task)
    assert (status, answer["result"]) == (200, True)
    assert state.channels.push_tasks[answer["id"]].ttl == 86_400
    status, error = await php2_call(api, "POST", "push/tasks", {**task, "ttl": -1})
    assert (status, error["error_code"]) == (422, 422)


async def test_2x_sms_and_automation_events(api: Api) -> None:
    state = api.sb.state
    book = state.add_book("Phones").id
    # ApiClient::addPhonesWithVariables($bookID, $phones): post('sms/numbers/variables',
    # ['addressBookId' => $bookID, 'phones' => json_encode($phones)]).
    phones = {"380501112233": [[{"name": "name", "type": "string", "value": "Ann"}]]}
    data = {"addressBookId": book, "phones": php_json(phones)}
    status, answer = await php2_call(api, "POST", "sms/numbers/variables", data)
    assert (status, answer[0]["counters"]["added"]) == (200, 1)
    # ApiClient::sendSmsByBook($bookID, $params): post('sms/campaigns', [addressBookId] +
    # $params), then cancelSmsCampaign($id): put('sms/campaigns/cancel/' . $id), body `[]`.
    later = "2099-01-01 10:00:00"
    data = {"addressBookId": book, "sender": "Shop", "body": "Soon", "date": later}
    status, planned = await php2_call(api, "POST", "sms/campaigns", data)
    assert status == 200
    cancel = f"sms/campaigns/cancel/{planned['campaign_id']}"
    assert await php2_call(api, "PUT", cancel) == (200, {"result": True})
    assert state.channels.sms == {}
    # ApiClient::startEventAutomation360($eventName, $variables): post('events/name/' .
    # $eventName, $variables).
    data = {"email": "ann@example.com", "phone": "380501112233", "order": 42}
    assert await php2_call(api, "POST", "events/name/order_paid", data) == (200, {"result": True})
    assert state.channels.events[-1]["data"] == data


# -- 1.x ---------------------------------------------------------------------------------------
async def test_1x_update_variables_as_a_bracketed_form_on_a_double_slash(api: Api) -> None:
    # ApiClient::updateEmailVariables($bookID, $email, $vars): sendRequest('/addressbooks/' .
    # $bookID . '/emails/variable', 'POST', ['email' => .., 'variables' => [['name' => ..,
    # 'value' => ..], ..]]): a form on `//addressbooks/...`.
    state = api.sb.state
    book = state.add_book("Leads").id
    state.add_subscriber(book, "ann@example.com", {"name": "Ann"})
    data = {
        "email": "ann@example.com",
        "variables": [{"name": "city", "value": "Odesa"}, {"name": "visits", "value": 4}],
    }
    assert "variables%5B1%5D%5Bname%5D=visits" in http_build_query(data)
    status, answer = await php1_call(api, "POST", f"/addressbooks/{book}/emails/variable", data)
    assert (status, answer) == (200, {"result": True})
    assert state.books[book].get("ann@example.com").variables == {
        "name": "Ann",
        "city": "Odesa",
        "visits": "4",
    }
    status, error = await php1_call(
        api, "POST", f"/addressbooks/{book}/emails/variable", {**data, "email": "bob@example.com"}
    )
    assert (status, error["error_code"]) == (404, 502)


async def test_1x_remove_emails_and_send_mail_as_serialized_form_fields(api: Api) -> None:
    state = api.sb.state
    book = state.add_book("Leads").id
    for email in ("ann@example.com", "bob@example.com"):
        state.add_subscriber(book, email)
    # ApiClient::removeEmails($bookID, $emails): DELETE, form emails=serialize($emails).
    data = {"emails": php_serialize(["bob@example.com"])}
    assert await php1_call(api, "DELETE", f"addressbooks/{book}/emails", data) == (
        200,
        {"result": True},
    )
    assert [r.email for r in state.books[book].iter_rows()] == ["ann@example.com"]
    # ApiClient::smtpSendMail($email): POST smtp/emails, form email=serialize($emailData)
    # with html base64-encoded.
    mail = {
        "html": b64("<b>Hi</b>"),
        "text": "Hi",
        "subject": "Hello",
        "from": {"name": "Shop", "email": "sender@example.com"},
        "to": [{"name": "Ann", "email": "ann@example.com"}],
    }
    status, answer = await php1_call(api, "POST", "smtp/emails", {"email": php_serialize(mail)})
    assert (status, answer["result"]) == (200, True)
    assert state.smtp.by_id[answer["id"]].subject == "Hello"
    mail["from"] = {"name": "Shop", "email": "stranger@example.com"}
    status, error = await php1_call(api, "POST", "smtp/emails", {"email": php_serialize(mail)})
    assert (status, error) == (422, {"message": "Sender is not valid", "error_code": 422})


async def test_1x_push_task_form_on_a_double_slash(api: Api) -> None:
    # ApiClient::createPushTask($taskInfo): sendRequest('/push/tasks', 'POST', $data): a form
    # on `//push/tasks`, ttl 0 unless given.
    state = api.sb.state
    site = state.add_push_website("https://shop.example.com")
    data = {"title": "Sale 1x form", "website_id": site.id, "body": "50% off", "ttl": 0}
    status, answer = await php1_call(api, "POST", "/push/tasks", data)
    assert (status, answer["result"]) == (200, True)
    task = state.channels.push_tasks[answer["id"]]
    assert (task.title, task.website_id, task.ttl) == ("Sale 1x form", site.id, 86_400)
    # The request log keeps the merged path; the session's exchange log the path as sent.
    assert api.sb.requests()[-1].path == "/push/tasks"
    logged = await asyncio.to_thread(Path(os.environ[RECORD_ENV]).read_text, encoding="utf-8")
    lines = [json.loads(line) for line in logged.splitlines() if "Sale+1x+form" in line]
    assert [(x["path"], x["status"]) for x in lines] == [("//push/tasks", 200)]
    # A double-slash path that is no route is still a 404.
    status, error = await php1_call(api, "POST", "/push/nothing", data)
    assert (status, error) == (404, {"message": "Not Found", "error_code": 404})


async def test_1x_list_emails_on_a_double_slash_with_a_date(api: Api) -> None:
    # ApiClient::smtpListEmails(): sendRequest('/smtp/emails', 'GET', $data): the query
    # string on `//smtp/emails`.
    state = api.sb.state
    state.smtp.send("sender@example.com", ["ann@example.com"], "Hi", 10, state.now())
    data = {"limit": 0, "offset": 0, "from": fmt_date(state.now()), "to": "", "sender": ""}
    status, rows = await php1_call(api, "GET", "/smtp/emails", data)
    assert (status, [r["recipient"] for r in rows]) == (200, ["ann@example.com"])


async def test_1x_global_info_posts_the_list_as_a_numbered_form(api: Api) -> None:
    # ApiClient::getEmailsGlobalInfo($emails): sendRequest('emails', 'POST', $emails), so
    # http_build_query numbers the list's items: `0=ann%40example.com&1=bob%40example.com`.
    state = api.sb.state
    book = state.add_book("Leads").id
    state.add_subscriber(book, "ann@example.com")
    emails = ["ann@example.com", "bob@example.com"]
    form = http_build_query({str(i): email for i, email in enumerate(emails)})
    assert form == "0=ann%40example.com&1=bob%40example.com"
    status, info = await send(api, "POST", "/emails", data=form, headers=FORM)
    assert status == 200
    assert ([r["book_id"] for r in info["ann@example.com"]], info["bob@example.com"]) == (
        [book],
        [],
    )
