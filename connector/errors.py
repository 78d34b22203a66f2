"""Errors, named by what the caller should do.

::

    ConnectorError                  the root: anything this project raises on purpose
    ├── ConfigError                 fix the configuration or environment, then start again
    │   └── ConfigInvalid           a flow file has errors (each with file, line, column, path)
    ├── StartupFailed               the worker could not start (a taken port, a newer database);
    │                               it let go of everything it held: fix the cause, start again
    ├── RetriableError              try again later (429, 5xx, timeouts, a lost connection)
    ├── FatalError                  stop: retrying cannot help (other 4xx, bad credentials)
    │   ├── NeedsReauth             the connection's credentials were refused
    │   └── SignatureInvalid        a signed webhook or install request failed verification:
    │                               refuse it (400/401) and change nothing
    └── SkippableError              drop this one item, carry on with the rest

Third-party exceptions are translated into these only at the boundaries that own them
(the provider clients and the db layer), with ``raise ... from exc``.
"""

from __future__ import annotations

from dataclasses import dataclass


class ConnectorError(Exception):
    """Root of every error this project raises on purpose."""


class ConfigError(ConnectorError):
    """The configuration or the environment is wrong; fix it and start again."""


@dataclass(frozen=True)
class ConfigProblem:
    """One problem in a flow file, located for a human."""

    file: str
    line: int | None
    column: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        location = f" {self.path}:" if self.path else ""
        return f"{where}:{location} {self.message}"


class ConfigInvalid(ConfigError):
    """A flow file failed validation; ``problems`` lists every error found."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class StartupFailed(ConnectorError):
    """The worker could not start; everything it had opened is closed again.

    ``event`` is the log event that names the cause (``web_server_failed``, ...), ``fields``
    its data: the command line prints both plainly and exits 1.
    """

    def __init__(self, event: str, message: str, **fields: object) -> None:
        super().__init__(message)
        self.event = event
        self.fields = fields


class RetriableError(ConnectorError):
    """A transient failure: the same call may succeed later."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class FatalError(ConnectorError):
    """A permanent failure: retrying the same call cannot succeed."""


class NeedsReauth(FatalError):
    """The provider refused the connection's credentials; an operator must re-authorise."""


class SignatureInvalid(FatalError):
    """A signature did not verify (a Standard Webhooks message, a Mailium install request)
    or a signing secret is malformed: refuse the message and change nothing."""


class SkippableError(ConnectorError):
    """One item is bad; skip it and carry on with the rest."""
