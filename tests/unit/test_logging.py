"""Logging: JSON lines off a TTY, secrets never in the output."""

from __future__ import annotations

import io
import json
import logging
import uuid

import pytest
import structlog

from connector import logging as connector_logging
from connector.catalog import CATALOG
from connector.config import parse
from connector.errors import ConfigError

SECRET = "sup3r-s3cret-client-value"

pytestmark = pytest.mark.usefixtures("restore_logging")


@pytest.fixture
def stream() -> io.StringIO:
    out = io.StringIO()
    connector_logging.configure(level="DEBUG", fmt="json", stream=out)
    return out


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line]


def test_json_lines_with_fixed_event_names(stream: io.StringIO) -> None:
    structlog.get_logger("t").info("poll_finished", flow="welcome", events=3)
    (line,) = lines(stream)
    assert line["event"] == "poll_finished"
    assert line["flow"] == "welcome"
    assert line["events"] == 3
    assert line["level"] == "info"
    assert "timestamp" in line


def test_secret_named_keys_are_redacted(stream: io.StringIO) -> None:
    structlog.get_logger("t").info(
        "token_refreshed", access_token="abc.def.ghi", client_secret="xyz-123", connection="main"
    )
    (line,) = lines(stream)
    assert line["access_token"] == connector_logging.REDACTED
    assert line["client_secret"] == connector_logging.REDACTED
    assert line["connection"] == "main"


def test_configured_secret_values_never_appear(stream: io.StringIO) -> None:
    config_text = f"""
connections:
  main: {{client_id: abc, client_secret: "{SECRET}"}}
"""
    parse(config_text, CATALOG, "flows.yaml", {})
    log = structlog.get_logger("t")
    log.info("request_failed", detail=f"server said: bad credentials {SECRET}")
    log.info("nested", data={"inner": [f"x{SECRET}y"]})
    logging.getLogger("aiohttp.client").warning("stdlib line with %s inside", SECRET)
    try:
        raise RuntimeError(f"boom {SECRET}")
    except RuntimeError:
        log.exception("crashed")
    output = stream.getvalue()
    assert SECRET not in output
    assert output.count(connector_logging.REDACTED) >= 4
    assert "stdlib line with" in output


def test_bearer_and_webhook_secrets_scrubbed_from_text(stream: io.StringIO) -> None:
    structlog.get_logger("t").info(
        "request_sent", header="Authorization: Bearer eyJhbGciOi.payload.sig", note="whsec_QUJD"
    )
    output = stream.getvalue()
    assert "eyJhbGciOi" not in output
    assert "whsec_QUJD" not in output


def test_bad_level_and_format_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="LOG_LEVEL"):
        connector_logging.configure(level="LOUD", stream=io.StringIO())
    with pytest.raises(ConfigError, match="LOG_FORMAT"):
        connector_logging.configure(fmt="xml", stream=io.StringIO())


def test_console_format_is_chosen_explicitly() -> None:
    out = io.StringIO()
    connector_logging.configure(level="INFO", fmt="console", stream=out)
    structlog.get_logger("t").info("worker_started", flows=2)
    text = out.getvalue()
    assert "worker_started" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text.splitlines()[0])


def test_console_tracebacks_show_no_secret_held_in_a_local() -> None:
    secret = "console-local-secret-value"
    connector_logging.register_secret(secret)
    out = io.StringIO()
    connector_logging.configure(level="INFO", fmt="console", stream=out)

    def refresh() -> None:
        header = f"Bearer {secret}"
        marker = "plain-local-marker"
        raise RuntimeError(f"refresh failed for {len(header) + len(marker)} chars")

    try:
        refresh()
    except RuntimeError:
        structlog.get_logger("t").exception("token_refresh_failed")
    text = out.getvalue()
    assert "token_refresh_failed" in text
    assert "refresh failed for" in text
    assert "Traceback" in text
    assert secret not in text
    # Locals are not printed at all, secret or not.
    assert "plain-local-marker" not in text


def test_asyncpg_reconnect_tracebacks_are_dropped_other_warnings_kept(
    stream: io.StringIO,
) -> None:
    pool_logger = logging.getLogger("asyncpg.pool")
    for _ in range(3):
        try:
            raise ConnectionRefusedError(111, "Connect call failed")
        except ConnectionRefusedError:
            pool_logger.warning(
                "Failed to restore the pool connection floor; retrying", exc_info=True
            )
    pool_logger.warning("Pool.close() is taking over 60 seconds to complete.")
    output = stream.getvalue()
    assert "Failed to restore" not in output and "Traceback" not in output
    assert "ConnectionRefusedError" not in output
    assert "Pool.close() is taking over 60 seconds" in output
    connector_logging.configure(level="DEBUG", fmt="json", stream=io.StringIO())
    assert len(pool_logger.filters) == 1


def test_a_secret_registered_later_is_scrubbed_from_a_text_seen_before() -> None:
    # scrub() remembers what it made of texts it has seen; a new secret must not find a
    # remembered answer from before it was known.
    # Unique: other tests of the same process register secrets such as "secret-value".
    secret = f"late-{uuid.uuid4().hex}"
    text = f"note with {secret} inside"
    assert connector_logging.scrub(text) == text
    connector_logging.register_secret(secret)
    assert connector_logging.scrub(text) == f"note with {connector_logging.REDACTED} inside"


def test_a_logger_bound_before_a_reconfiguration_writes_where_the_latest_one_says() -> None:
    first, second = io.StringIO(), io.StringIO()
    connector_logging.configure(level="INFO", fmt="json", stream=first)
    bound = structlog.get_logger("t").bind(flow="welcome")
    connector_logging.configure(level="INFO", fmt="json", stream=second)
    bound.info("poll_finished")
    assert first.getvalue() == ""
    assert lines(second)[0]["event"] == "poll_finished"
