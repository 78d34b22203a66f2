"""Templated action params: rendering, load-time checks, and the sandbox."""

from __future__ import annotations

import textwrap
from urllib.parse import unquote, urlsplit

import pytest
from pydantic import BaseModel, ConfigDict

from connector.catalog import CATALOG
from connector.config import parse
from connector.errors import ConfigInvalid, FatalError
from connector.templates import check_params, context_for, problems_in, render_params

FIELDS = frozenset({"email", "variables", "mailing_list_id"})


def config_with(action: str) -> str:
    return textwrap.dedent(
        """\
        connections:
          main: {client_id: id, client_secret: s3cret-value}
        flows:
          - name: f
            trigger: {type: sendpulse.subscriber_added, params: {mailing_list_id: 1}}
            actions:
        """
    ) + textwrap.indent(textwrap.dedent(action), "      ")


WEBHOOK_URL = "https://example.com/hooks/{{ event.email | urlencode }}"
WEBHOOK = f"""\
- type: webhook
  url: "{WEBHOOK_URL}"
  secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
  headers: {{x-list: "{{{{ event.mailing_list_id }}}}", x-flow: "{{{{ flow.name }}}}"}}
"""


def test_good_template_loads_and_renders() -> None:
    config = parse(config_with(WEBHOOK), CATALOG, "flows.yaml", env={})
    params = config.plans[0].actions[0].params
    rendered = render_params(
        params,
        context_for({"email": "a b@x.io", "mailing_list_id": 7}, "f", "t"),
    )
    assert rendered.url == "https://example.com/hooks/a%20b%40x.io"  # type: ignore[attr-defined]
    assert rendered.headers == {"x-list": "7", "x-flow": "f"}  # type: ignore[attr-defined]
    # The loaded params still hold the template, for the next event.
    assert "{{" in params.url  # type: ignore[attr-defined]


def test_typo_fails_at_load_with_its_location() -> None:
    bad = WEBHOOK.replace("event.email", "event.emial")
    with pytest.raises(ConfigInvalid) as caught:
        parse(config_with(bad), CATALOG, "flows.yaml", env={})
    [problem] = caught.value.problems
    assert problem.path == "flows[0].actions[0].url"
    assert "event has no field 'emial'" in problem.message
    assert "email" in problem.message
    assert problem.line == 8


def test_syntax_error_and_unknown_names_fail_at_load() -> None:
    bad = WEBHOOK.replace("{{ flow.name }}", "{{ flow.name ").replace(
        "{{ event.mailing_list_id }}", "{{ secrets.token }}"
    )
    with pytest.raises(ConfigInvalid) as caught:
        parse(config_with(bad), CATALOG, "flows.yaml", env={})
    messages = {p.path: p.message for p in caught.value.problems}
    assert "does not compile" in messages["flows[0].actions[0].headers.x-flow"]
    assert "only 'event' and 'flow'" in messages["flows[0].actions[0].headers.x-list"]


@pytest.mark.parametrize(
    "source",
    [
        "{{ event.__class__ }}",
        "{{ event['__class__'] }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ event.email.__globals__ }}",
        "{{ cycler.__init__.__globals__.os }}",
        "{{ lipsum.__globals__ }}",
    ],
)
def test_escape_attempts_are_refused_at_load(source: str) -> None:
    assert problems_in(source, FIELDS)


class Params(BaseModel):
    text: str


@pytest.mark.parametrize(
    "source",
    [
        "{{ event.email.__class__.__mro__ }}",
        "{{ (event.email|attr('__class__')) }}",
        "{{ event.update({'x': 1}) }}",
        "{% set x = event.pop('email') %}{{ x }}",
    ],
)
def test_escape_attempts_are_refused_by_the_sandbox_at_render(source: str) -> None:
    payload = {"email": "a@b.c"}
    with pytest.raises(FatalError, match="template in text failed"):
        render_params(Params(text=source), context_for(payload, "f", "t"))
    assert payload == {"email": "a@b.c"}


def test_missing_field_at_render_is_fatal_not_empty() -> None:
    with pytest.raises(FatalError, match=r"'phone' is undefined|has no attribute 'phone'"):
        render_params(Params(text="{{ event.phone }}"), context_for({"email": "x"}, "f", "t"))


def test_nested_fields_and_loops_render() -> None:
    out = render_params(
        Params(text="{% for k, v in event.variables | dictsort %}{{ k }}={{ v }};{% endfor %}"),
        context_for({"variables": {"b": 2, "a": 1}}, "f", "t"),
    )
    assert out.text == "a=1;b=2;"
    assert check_params(Params(text="{{ event.variables.city }}"), FIELDS) == []


def test_plain_strings_are_left_alone() -> None:
    params = Params(text="no template here")
    assert render_params(params, {}) is params


class FrozenParams(BaseModel):
    model_config = ConfigDict(frozen=True)
    text: str
    headers: dict[str, str] = {}


def test_each_params_object_renders_as_its_own_text_says_when_asked_again() -> None:
    # Whether frozen params hold a template is remembered per object: asking again about the
    # same object, or about another one with other text, must give that object's answer.
    context = context_for({"email": "a@b.c"}, "f", "t")
    plain = FrozenParams(text="plain", headers={"x": "1"})
    templated = FrozenParams(text="{{ event.email }}", headers={"x": "1"})
    for _ in range(2):
        assert render_params(plain, context) is plain
        assert render_params(templated, context).text == "a@b.c"
    for n in range(50):
        # Objects come and go; one that takes a dead object's id is looked at afresh.
        fresh = FrozenParams(text="{{ event.email }}" if n % 2 else f"plain {n}")
        rendered = render_params(fresh, context)
        assert rendered.text == ("a@b.c" if n % 2 else f"plain {n}")


HOSTILE_EMAIL = "a@b.c/../../admin?x=1#"


@pytest.mark.parametrize(
    ("source", "rendered"),
    [
        (
            "https://example.com/hooks/{{ event.email }}",
            "https://example.com/hooks/a%40b.c%2F..%2F..%2Fadmin%3Fx%3D1%23",
        ),
        # Jinja's own urlencode keeps "/": ours does not, and does not encode twice.
        (
            "https://example.com/hooks/{{ event.email | urlencode }}",
            "https://example.com/hooks/a%40b.c%2F..%2F..%2Fadmin%3Fx%3D1%23",
        ),
        (
            "https://example.com/hooks?who={{ event.email }}&list=1",
            "https://example.com/hooks?who=a%40b.c%2F..%2F..%2Fadmin%3Fx%3D1%23&list=1",
        ),
    ],
)
def test_event_data_cannot_change_a_webhook_urls_structure(source: str, rendered: str) -> None:
    config = parse(config_with(WEBHOOK.replace(WEBHOOK_URL, source)), CATALOG, "flows.yaml", env={})
    params = config.plans[0].actions[0].params
    payload = {"email": HOSTILE_EMAIL, "mailing_list_id": 7}
    out = render_params(params, context_for(payload, "f", "t"))
    assert out.url == rendered  # type: ignore[attr-defined]
    parts = urlsplit(out.url)  # type: ignore[attr-defined]
    assert (parts.hostname, parts.fragment) == ("example.com", "")
    assert unquote(parts.path.rsplit("/", 1)[-1]) in (HOSTILE_EMAIL, "hooks")


@pytest.mark.parametrize(
    "source",
    [
        "{{ event.email }}",
        "https://{{ event.email }}/hook",
        "https://example.com{{ event.email }}",
        "{{ flow.name }}://example.com/x",
        "https://example.com:{{ event.mailing_list_id }}/x",
    ],
)
def test_templates_in_a_urls_scheme_or_host_are_refused_at_load(source: str) -> None:
    with pytest.raises(ConfigInvalid) as caught:
        parse(config_with(WEBHOOK.replace(WEBHOOK_URL, source)), CATALOG, "flows.yaml", env={})
    [problem] = caught.value.problems
    assert problem.path == "flows[0].actions[0].url"
    assert "scheme and host written out" in problem.message


EMAIL_ACTION = """\
- type: sendpulse.send_email
  connection: main
  to: "{{ event.email }}"
  from_email: shop@example.com
  subject: "Hello {{ event.email }}"
  html: "<p>Welcome, {{ event.email }}!</p>"
"""


def test_event_data_in_email_html_is_escaped_and_elsewhere_left_as_text() -> None:
    config = parse(config_with(EMAIL_ACTION), CATALOG, "flows.yaml", env={})
    params = config.plans[0].actions[0].params
    email = "<script>alert(1)</script>@x.io"
    out = render_params(params, context_for({"email": email}, "f", "t"))
    assert out.html == (  # type: ignore[attr-defined]
        "<p>Welcome, &lt;script&gt;alert(1)&lt;/script&gt;@x.io!</p>"
    )
    assert out.subject == f"Hello {email}"  # type: ignore[attr-defined]
    assert out.to == email  # type: ignore[attr-defined]
