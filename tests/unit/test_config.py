"""Flow files: a valid one round-trips; every kind of mistake is located and explained."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from connector.catalog import CATALOG
from connector.config import Config, json_schema, load_file, parse
from connector.errors import ConfigInvalid, ConfigProblem
from connector.plan import FlowPlan

ENV = {
    "CLIENT_ID": "abc",
    "CLIENT_SECRET": "s3cr3t-value",
    "HOOK_SECRET": "whsec_YS13ZWJob29rLXNlY3JldC0yNC1ieXRl",
}

VALID = """\
connections:
  main:
    provider: sendpulse
    client_id: ${CLIENT_ID}
    client_secret: ${CLIENT_SECRET}
    rate_limit: 3/s
flows:
  - name: welcome
    trigger:
      type: sendpulse.subscriber_added
      connection: main
      params: {mailing_list_id: 123}
    every: 5m
    actions:
      - type: webhook
        url: https://example.com/hooks/welcome
        secret: ${HOOK_SECRET}
      - type: append_jsonl
        params:
          path: /tmp/events.jsonl
"""


def problems_of(text: str, env: dict[str, str] | None = None) -> list[ConfigProblem]:
    with pytest.raises(ConfigInvalid) as caught:
        parse(text, CATALOG, "flows.yaml", ENV if env is None else env)
    return caught.value.problems


def test_valid_file_loads_with_defaults_and_interpolation() -> None:
    config = parse(VALID, CATALOG, "flows.yaml", ENV)
    conn = config.connections["main"]
    assert conn.client_id == "abc"
    assert conn.client_secret is not None
    assert conn.client_secret.get_secret_value() == "s3cr3t-value"
    assert conn.rate_limit.per_second == 3
    flow = config.flows[0]
    assert flow.every == timedelta(minutes=5)
    assert flow.start == "now"
    assert flow.max_first_run_events == 1000
    assert [a.type for a in flow.actions] == ["webhook", "append_jsonl"]
    assert (
        str(_plan(config, "welcome").actions[0].params.url) == "https://example.com/hooks/welcome"
    )  # type: ignore[attr-defined]
    assert _plan(config, "welcome").params.mailing_list_id == 123  # type: ignore[attr-defined]


def test_secrets_stay_out_of_repr() -> None:
    config = parse(VALID, CATALOG, "flows.yaml", ENV)
    assert "s3cr3t-value" not in repr(config)
    assert "whsec_YS13ZWJob29rLXNlY3JldC0yNC1ieXRl" not in repr(config)


def test_round_trip_through_model_dump() -> None:
    config = parse(VALID, CATALOG, "flows.yaml", ENV)
    dumped = config.document.model_dump(mode="json")
    assert dumped["flows"][0]["every"] == "5m"
    assert dumped["connections"]["main"]["rate_limit"] == "3/s"
    # Secrets are masked in dumps, so a dump never leaks them.
    assert "s3cr3t-value" not in json.dumps(dumped)


def test_default_and_escaped_variables() -> None:
    text = VALID.replace("${CLIENT_ID}", "${MISSING_ID:-fallback}").replace(
        "https://example.com/hooks/welcome", "https://example.com/$${literal}"
    )
    config = parse(text, CATALOG, "flows.yaml", ENV)
    assert config.connections["main"].client_id == "fallback"
    assert str(_plan(config, "welcome").actions[0].params.url).endswith("/$%7Bliteral%7D")  # type: ignore[attr-defined]


def test_only_connection_is_used_when_none_is_named() -> None:
    text = VALID.replace("      connection: main\n", "")
    config = parse(text, CATALOG, "flows.yaml", ENV)
    assert config.flows[0].trigger.connection == "main"


def test_start_timestamp_needs_a_watermark_trigger() -> None:
    text = VALID.replace("    every: 5m\n", "    every: 5m\n    start: 2026-01-01T00:00:00Z\n")
    (problem,) = problems_of(text)
    assert problem.path == "flows[0].start"
    assert "watermark" in problem.message
    assert problem.line == 14


def test_load_file_reads_from_disk(tmp_path: Path) -> None:
    path = tmp_path / "flows.yaml"
    path.write_text(VALID)
    config = load_file(path, CATALOG, ENV)
    assert config.file == str(path)


def test_load_file_missing() -> None:
    with pytest.raises(ConfigInvalid) as caught:
        load_file("/nonexistent/flows.yaml", CATALOG, ENV)
    assert "file not found" in str(caught.value)


# (description, text, expected path, expected line, expected words in the message)
INVALID = [
    (
        "bad YAML syntax",
        VALID.replace("    every: 5m\n", "    every: [5m\n"),
        "",
        14,
        "YAML syntax: expected ',' or ']'",
    ),
    (
        "missing variable",
        VALID.replace("${CLIENT_SECRET}", "${NOT_SET_ANYWHERE}"),
        "connections.main.client_secret",
        5,
        "NOT_SET_ANYWHERE is not set",
    ),
    (
        "unknown trigger",
        VALID.replace("sendpulse.subscriber_added", "sendpulse.subscriber_teleported"),
        "flows[0].trigger.type",
        10,
        "unknown trigger type 'sendpulse.subscriber_teleported'; known types: ",
    ),
    (
        "unknown action",
        VALID.replace("type: append_jsonl", "type: carrier_pigeon"),
        "flows[0].actions[1].type",
        18,
        "unknown action type 'carrier_pigeon'; known types: append_jsonl",
    ),
    (
        "duplicate flow name",
        VALID + VALID.split("flows:\n", 1)[1],
        "flows[1].name",
        21,
        "flow name 'welcome' is already used by flows[0]",
    ),
    (
        "bad duration",
        VALID.replace("every: 5m", "every: five minutes"),
        "flows[0].every",
        13,
        "'five minutes' is not a duration",
    ),
    (
        "interval too short",
        VALID.replace("every: 5m", "every: 1s"),
        "flows[0].every",
        13,
        "at least 10s",
    ),
    (
        "bad URL",
        VALID.replace("https://example.com/hooks/welcome", "not a url"),
        "flows[0].actions[0].url",
        16,
        "URL",
    ),
    (
        "wrong param type",
        VALID.replace("mailing_list_id: 123", "mailing_list_id: lots"),
        "flows[0].trigger.params.mailing_list_id",
        12,
        "integer",
    ),
    (
        "unknown key in a flow",
        VALID.replace("    every: 5m\n", "    every: 5m\n    evry: 10m\n"),
        "flows[0].evry",
        14,
        "unknown key 'evry'",
    ),
    (
        "unknown trigger param",
        VALID.replace("{mailing_list_id: 123}", "{mailing_list_id: 123, colour: blue}"),
        "flows[0].trigger.params.colour",
        12,
        "unknown key 'colour'",
    ),
    (
        "unknown connection",
        VALID.replace("      connection: main\n", "      connection: other\n"),
        "flows[0].trigger.connection",
        11,
        "unknown connection 'other'; known: main",
    ),
    (
        "bad rate limit",
        VALID.replace("rate_limit: 3/s", "rate_limit: fast"),
        "connections.main.rate_limit",
        6,
        "'fast' is not a rate limit",
    ),
    (
        "rate limit above SendPulse's",
        VALID.replace("rate_limit: 3/s", "rate_limit: 20/s"),
        "connections.main",
        2,
        "above SendPulse's documented 10 requests per second",
    ),
    (
        "missing client secret",
        VALID.replace("    client_secret: ${CLIENT_SECRET}\n", ""),
        "connections.main",
        2,
        "client_secret is missing",
    ),
    (
        "no actions",
        VALID.split("    actions:")[0] + "    actions: []\n",
        "flows[0].actions",
        14,
        "at least 1 item",
    ),
    (
        "webhook secret without whsec_ prefix",
        VALID.replace("${HOOK_SECRET}", "plain-secret"),
        "flows[0].actions[0].secret",
        17,
        "starts with 'whsec_'",
    ),
    (
        "webhook secret with nothing after whsec_",
        VALID.replace("${HOOK_SECRET}", "whsec_"),
        "flows[0].actions[0].secret",
        17,
        "the webhook secret is empty",
    ),
    (
        "webhook secret that is not base64",
        VALID.replace("${HOOK_SECRET}", "whsec_not!base64"),
        "flows[0].actions[0].secret",
        17,
        "is not base64",
    ),
    (
        "webhook secret shorter than 24 bytes",
        VALID.replace("${HOOK_SECRET}", "whsec_c2VjcmV0"),
        "flows[0].actions[0].secret",
        17,
        "at least 24 bytes",
    ),
    (
        "missing required trigger param",
        VALID.replace("{mailing_list_id: 123}", "{}"),
        "flows[0].trigger.params.mailing_list_id",
        12,
        "'mailing_list_id' is required",
    ),
    (
        "duplicate key",
        VALID.replace("    every: 5m\n", "    every: 5m\n    every: 10m\n"),
        "flows[0].every",
        14,
        "duplicate key 'every'",
    ),
    (
        "bad flow name",
        VALID.replace("name: welcome", "name: 'welcome flow!'"),
        "flows[0].name",
        8,
        "should match pattern",
    ),
    (
        "start timestamp without zone",
        VALID.replace("    every: 5m\n", "    every: 5m\n    start: 2026-01-01T00:00:00\n"),
        "flows[0].start",
        14,
        "time zone",
    ),
    (
        "not a mapping",
        "- just\n- a list\n",
        "",
        1,
        "a flow file is a mapping",
    ),
    (
        "bad egress network",
        VALID + "egress:\n  allow_networks: [not-a-net]\n",
        "egress.allow_networks",
        22,
        "'not-a-net' is not a network",
    ),
    (
        "param both beside type and under params",
        VALID.replace(
            "        secret: ${HOOK_SECRET}\n",
            "        secret: ${HOOK_SECRET}\n        params: {url: 'https://x.example'}\n",
        ),
        "flows[0].actions[0].url",
        16,
        "given both here and under params",
    ),
]


@pytest.mark.parametrize(
    ("text", "path", "line", "words"),
    [case[1:] for case in INVALID],
    ids=[case[0] for case in INVALID],
)
def test_invalid_file_is_located_and_explained(text: str, path: str, line: int, words: str) -> None:
    problems = problems_of(text)
    matching = [p for p in problems if p.path == path and words in p.message]
    assert matching, f"no problem at {path!r} mentioning {words!r}; got {problems}"
    assert matching[0].line == line
    assert matching[0].file == "flows.yaml"
    assert matching[0].column is not None


def test_every_problem_is_reported_not_just_the_first() -> None:
    text = (
        VALID.replace("every: 5m", "every: soon")
        .replace("type: append_jsonl", "type: nope")
        .replace("rate_limit: 3/s", "rate_limit: x")
    )
    problems = problems_of(text)
    paths = {p.path for p in problems}
    assert {"flows[0].every", "connections.main.rate_limit"} <= paths
    rendered = str(ConfigInvalid(problems))
    assert "flows.yaml:6:" in rendered


def test_a_flow_with_bad_fields_still_has_its_trigger_and_actions_checked() -> None:
    text = (
        VALID.replace("every: 5m", "every: 5s")
        .replace("params: {mailing_list_id: 123}", "params: {mailing_list_id: 123, colour: red}")
        .replace("type: append_jsonl", "type: nope")
    )
    problems = problems_of(text)
    by_path = {p.path: p.message for p in problems}
    assert "at least 10s" in by_path["flows[0].every"]
    assert "flows[0].trigger.params.colour" in by_path
    assert "nope" in by_path["flows[0].actions[1].type"]
    assert len(problems) == 3


@pytest.mark.parametrize(
    ("change", "hidden", "shown"),
    [
        # A broken action is reported once, by the model; its neighbour is still checked.
        (("type: append_jsonl", "typo: append_jsonl"), "flows[0].actions[1]", "flows[0].every"),
        # A broken trigger hides nothing else.
        (("type: sendpulse.subscriber_added", "kind: x"), "flows[0].trigger", "flows[0].every"),
    ],
)
def test_salvaged_checks_do_not_repeat_the_model_problem(
    change: tuple[str, str], hidden: str, shown: str
) -> None:
    text = (
        VALID.replace("every: 5m", "every: 5s")
        .replace(*change)
        .replace("url: https://example.com/hooks/welcome", "url: ftp://example.com")
    )
    problems = problems_of(text)
    paths = [p.path for p in problems]
    assert shown in paths
    assert "flows[0].actions[0].url" in paths
    assert len(paths) == len(set(paths)), paths
    assert not any("_invalid_" in p.message for p in problems)
    assert any(p.startswith(hidden) for p in paths)


@pytest.mark.parametrize(
    ("where", "value", "words"),
    [
        ("connection", "0s", "at least 1s (got 0s)"),
        ("connection", "0", "at least 1s (got 0s)"),
        ("connection", "500ms", "at least 1s (got 0.5s)"),
        ("connection", "11m", "at most 10m (got 11m)"),
        ("webhook", "0s", "at least 1s (got 0s)"),
        ("webhook", "999ms", "at least 1s"),
        ("webhook", "6m", "at most 5m (got 6m)"),
    ],
)
def test_timeouts_cannot_be_switched_off_or_unbounded(where: str, value: str, words: str) -> None:
    if where == "connection":
        text = VALID.replace("rate_limit: 3/s", f"rate_limit: 3/s\n    timeout: {value}")
        path = "connections.main.timeout"
    else:
        text = VALID.replace(
            "secret: ${HOOK_SECRET}", f"secret: ${{HOOK_SECRET}}\n        timeout: {value}"
        )
        path = "flows[0].actions[0].timeout"
    [problem] = problems_of(text)
    assert problem.path == path
    assert words in problem.message


def test_timeouts_at_the_bounds_are_accepted() -> None:
    text = VALID.replace("rate_limit: 3/s", "rate_limit: 3/s\n    timeout: 1s").replace(
        "secret: ${HOOK_SECRET}", "secret: ${HOOK_SECRET}\n        timeout: 5m"
    )
    config = parse(text, CATALOG, "flows.yaml", ENV)
    assert config.connections["main"].timeout == timedelta(seconds=1)
    assert _plan(config, "welcome").actions[0].params.timeout == timedelta(minutes=5)  # type: ignore[attr-defined]


def test_missing_variables_are_all_named() -> None:
    problems = problems_of(VALID, env={})
    names = " ".join(p.message for p in problems)
    for name in ("CLIENT_ID", "CLIENT_SECRET", "HOOK_SECRET"):
        assert name in names


def test_empty_file_is_valid_and_empty() -> None:
    config = parse("", CATALOG, "flows.yaml", ENV)
    assert config.flows == []
    assert config.connections == {}


def test_json_schema_lists_every_trigger_and_action() -> None:
    from actions import ACTIONS
    from triggers import TRIGGERS

    schema = json_schema(CATALOG)
    flow = schema["$defs"]["Flow"]
    trigger_keys = {
        v["properties"]["type"]["const"] for v in flow["properties"]["trigger"]["oneOf"]
    }
    action_keys = {
        v["properties"]["type"]["const"] for v in flow["properties"]["actions"]["items"]["oneOf"]
    }
    assert trigger_keys == set(TRIGGERS.keys())
    assert action_keys == set(ACTIONS.keys())
    assert schema["additionalProperties"] is False
    json.dumps(schema)


def test_durations_and_rate_limits_parse() -> None:
    from connector.units import format_duration, parse_duration, parse_rate_limit

    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration("250ms") == timedelta(milliseconds=250)
    assert format_duration(timedelta(minutes=5)) == "5m"
    assert parse_rate_limit("600/m").per_second == 10
    assert parse_rate_limit("10/2s").per_second == 5
    assert str(parse_rate_limit("3/s")) == "3/s"
    for bad in ("", "-1s", "5 minutes", "1y"):
        with pytest.raises(ValueError, match="not a duration"):
            parse_duration(bad)
    for bad_rate in ("0/s", "3/", "/s", "three/s"):
        with pytest.raises(ValueError):
            parse_rate_limit(bad_rate)


def test_an_enormous_duration_is_a_problem_not_a_crash() -> None:
    [problem] = problems_of(VALID.replace("every: 5m", "every: 99999999999999d"))
    assert problem.path == "flows[0].every"
    assert "too long a duration" in problem.message


def _plan(config: Config, name: str) -> FlowPlan:
    plan = config.plan(name)
    assert plan is not None, f"no plan for {name!r}"
    return plan
