"""structlog setup: JSON lines off a TTY, a console renderer on one, secrets redacted.

Configured once, from the CLI. stdlib loggers (aiohttp, apscheduler, asyncpg) are routed
through the same processors so every line has one shape.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import traceback
from collections.abc import Callable, Iterable, MutableMapping
from typing import Any, TextIO

import structlog

REDACTED = "[redacted]"

# Keys whose values are secrets whatever they hold.
_SECRET_KEY = re.compile(
    r"(secret|password|passwd|token|api_?key|authorization|private_?key|credential|hmac|"
    r"signature|client_secret|access_token|refresh_token|cookie)",
    re.IGNORECASE,
)
# Values that look like bearer headers or our own webhook secrets, wherever they appear.
_SECRET_VALUE = re.compile(r"(Bearer\s+[A-Za-z0-9._~+/=-]+|whsec_[A-Za-z0-9+/=]+)")

_secret_values: set[str] = set()
# The registered secrets, longest first (a secret inside a longer one must not split it), and
# what scrub() made of recent texts: log lines repeat the same flow, connection and worker
# names, and a scan over every secret per value cost more than the rest of the line with a
# few hundred connections. Both are replaced whole when a secret is added, so a scrub that
# raced a registration can only fill a table no one reads any more.
_by_length: tuple[str, ...] = ()
_scrubbed: dict[str, str] = {}
_SCRUBBED_MAX = 4096
_SCRUBBED_TEXT_MAX = 256
# Whether a key names a secret, per key: a line has a dozen keys, always the same few dozen.
_secret_key: dict[str, bool] = {}
_SECRET_KEY_MAX = 4096
# The format configure() chose: the CLI draws progress bars only beside console logs.
chosen_format: str | None = None
# Where structlog's rendered lines go (see _LineWriter); set by configure().
_line_handler: logging.StreamHandler[Any] | None = None


def register_secret(value: str | None) -> None:
    """Remember a configured secret so that it is scrubbed from every log line."""
    global _by_length, _scrubbed
    # Very short values would redact ordinary words; they are not worth protecting this way.
    if value and len(value) >= 6 and value not in _secret_values:
        _secret_values.add(value)
        _by_length = tuple(sorted(_secret_values, key=len, reverse=True))
        _scrubbed = {}


def register_secrets(values: Iterable[str | None]) -> None:
    for value in values:
        register_secret(value)


def scrub(text: str) -> str:
    """Remove every registered secret and secret-looking token from ``text``."""
    known = _scrubbed
    done = known.get(text)
    if done is not None:
        return done
    clean = text
    for secret in _by_length:
        if secret in clean:
            clean = clean.replace(secret, REDACTED)
    clean = _SECRET_VALUE.sub(REDACTED, clean)
    if len(text) <= _SCRUBBED_TEXT_MAX:
        if len(known) >= _SCRUBBED_MAX:
            known.clear()
        known[text] = clean
    return clean


def _is_secret_key(key: str) -> bool:
    named = _secret_key.get(key)
    if named is None:
        named = _SECRET_KEY.search(key) is not None
        if len(_secret_key) >= _SECRET_KEY_MAX:
            _secret_key.clear()
        _secret_key[key] = named
    return named


# Values with no text in them to scrub (bool is an int).
_PLAIN = (int, float, type(None))


def _redact_value(key: str | None, value: Any) -> Any:
    if key is not None and _is_secret_key(key) and value not in (None, "", REDACTED):
        return REDACTED
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: _redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(None, v) for v in value]
    if isinstance(value, BaseException):
        return scrub(repr(value))
    return value


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: secret-named keys and known secret values become ``[redacted]``."""
    # _redact_value, with its commonest cases (numbers, plain strings) written out: this runs
    # for every key of every line.
    for key, value in list(event_dict.items()):
        if key == "event":
            event_dict[key] = scrub(str(value))
        elif _is_secret_key(key) and value not in (None, "", REDACTED):
            event_dict[key] = REDACTED
        elif type(value) is str:
            event_dict[key] = scrub(value)
        elif not isinstance(value, _PLAIN):
            event_dict[key] = _redact_value(None, value)
    return event_dict


def _scrub_rendered(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> Any:
    # Tracebacks are rendered into the "exception" key after redact_secrets ran.
    if "exception" in event_dict and isinstance(event_dict["exception"], str):
        event_dict["exception"] = scrub(event_dict["exception"])
    return event_dict


class _ScrubbedConsole:
    """The console renderer, with its finished text (traceback included) scrubbed."""

    def __init__(self, renderer: Callable[..., Any]) -> None:
        self._renderer = renderer

    def __call__(self, logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> str:
        return scrub(str(self._renderer(logger, method, event_dict)))


class _CurrentStderr:
    """A stream that is always the current ``sys.stderr``."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


class _LineWriter:
    """What structlog logs through: its rendered lines, written by the root logger's handler.

    The same line as through the stdlib (the same processors render it), without building
    two ``LogRecord`` copies and walking the stack for a caller no renderer prints: that
    was half the CPU of a log line, and a poll or a delivery writes one each. The stdlib
    logger of the same name still decides, by its level, whether the line is written.
    """

    def __init__(self, logger: logging.Logger) -> None:
        self.name = logger.name
        self._logger = logger

    def _write(self, level: int, line: str) -> None:
        logger = self._logger
        handler = _line_handler
        if handler is None or logger.disabled or not logger.isEnabledFor(level):
            return
        try:
            handler.acquire()
            try:
                handler.stream.write(line + handler.terminator)
                handler.stream.flush()
            finally:
                handler.release()
        except Exception:
            # As a logging.Handler does: a failed write must not fail the caller.
            if logging.raiseExceptions:
                traceback.print_exc(file=sys.__stderr__)

    def debug(self, line: str) -> None:
        self._write(logging.DEBUG, line)

    def info(self, line: str) -> None:
        self._write(logging.INFO, line)

    msg = info

    def warning(self, line: str) -> None:
        self._write(logging.WARNING, line)

    warn = warning

    def error(self, line: str) -> None:
        self._write(logging.ERROR, line)

    exception = error

    def critical(self, line: str) -> None:
        self._write(logging.CRITICAL, line)

    fatal = critical


def quiet_embedded_database() -> None:
    """Keep the embedded Postgres' start and reuse lines out of a command's report (INFO)."""
    if logging.getLogger().level > logging.DEBUG:
        logging.getLogger("connector.db.embedded").setLevel(logging.WARNING)


def configure(
    *,
    level: str | None = None,
    fmt: str | None = None,
    stream: TextIO | None = None,
) -> None:
    """Configure structlog and the stdlib root logger.

    ``fmt`` is ``json`` or ``console``; by default JSON unless ``stream`` is a TTY.
    ``LOG_FORMAT`` and ``LOG_LEVEL`` override the defaults.
    """
    stream = stream or sys.stderr
    level_name = (level or os.environ.get("LOG_LEVEL") or "INFO").upper()
    numeric_level = logging.getLevelNamesMapping().get(level_name)
    if numeric_level is None:
        from connector.errors import ConfigError

        raise ConfigError(
            f"LOG_LEVEL={level_name!r} is not a level; use DEBUG, INFO, WARNING or ERROR"
        )
    chosen = (fmt or os.environ.get("LOG_FORMAT") or "").lower()
    if chosen not in ("", "json", "console"):
        from connector.errors import ConfigError

        raise ConfigError(f"LOG_FORMAT={chosen!r} is not a format; use json or console")
    if not chosen:
        chosen = "console" if stream.isatty() else "json"
    global chosen_format
    chosen_format = chosen

    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        redact_secrets,
        # After the redaction: a timestamp holds no secret, and as a text never seen twice it
        # would only crowd out the names that scrub() keeps.
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any
    if chosen == "json":
        renderer = structlog.processors.JSONRenderer()
        final: list[Any] = [
            structlog.processors.format_exc_info,
            _scrub_rendered,
            renderer,
        ]
    else:
        from connector.console_log import ScanRenderer

        # Plain tracebacks: rich ones print every frame's locals, where tokens and secrets live.
        final = [
            structlog.processors.format_exc_info,
            _ScrubbedConsole(ScanRenderer(colors=stream.isatty())),
        ]

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final],
    )
    # Written through whatever sys.stderr is at the time, so that a progress bar that takes
    # over stderr (progress_bar.TerminalPolls) prints each line above itself.
    handler = logging.StreamHandler(_CurrentStderr() if stream is sys.stderr else stream)
    handler.setFormatter(formatter)
    # structlog's own lines are rendered by structlog and written by _LineWriter; the
    # formatter above renders only the stdlib loggers' records (aiohttp, asyncpg, ...).
    # The handler of the latest configure(), as the stdlib's loggers would reach it through
    # the root logger, also for a logger bound before.
    global _line_handler
    _line_handler = handler
    stdlib_loggers = structlog.stdlib.LoggerFactory(ignore_frame_names=[__name__])

    def line_writer(*args: Any) -> _LineWriter:
        return _LineWriter(stdlib_loggers(*args))

    structlog.configure(
        processors=[*shared, *final],
        logger_factory=line_writer,
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        cache_logger_on_first_use=False,
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric_level)
    # aiohttp's access log is one line per request: useful on the web server at DEBUG only.
    logging.getLogger("aiohttp.access").setLevel(max(numeric_level, logging.WARNING))
    logging.getLogger("apscheduler").setLevel(max(numeric_level, logging.WARNING))
    pool_logger = logging.getLogger("asyncpg.pool")
    if not any(isinstance(f, _PoolReconnectNoise) for f in pool_logger.filters):
        pool_logger.addFilter(_PoolReconnectNoise())


class _PoolReconnectNoise(logging.Filter):
    """Drops asyncpg's warning, with a traceback, at each retry of its pool's floor.

    While Postgres is down that is one traceback per second or so per worker; the worker
    says ``database_unavailable`` once and ``database_available`` once instead.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Failed to restore the pool connection")
