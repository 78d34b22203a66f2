"""``append_jsonl``: append the event as one JSON line to a file, fsync'd."""

from __future__ import annotations

import asyncio
import errno
import json
import os
from pathlib import Path
from typing import Any, ClassVar

from connector.errors import FatalError, RetriableError
from connector.plugins import Action, ActionContext, ActionResult, PluginParams, StoredEvent


class Params(PluginParams):
    path: Path


def line_for(ctx: ActionContext, event: StoredEvent) -> bytes:
    """One line per delivery; ``delivery_id`` lets a reader drop the repeats of a retry."""
    document: dict[str, Any] = {
        "delivery_id": ctx.delivery_id,
        "event_id": event.id,
        "flow": event.flow,
        "type": event.trigger,
        "item_key": event.item_key,
        "occurred_at": event.occurred_at.isoformat() if event.occurred_at else None,
        "data": event.payload,
    }
    if ctx.test:
        document["test"] = True
    text = json.dumps(document, separators=(",", ":"), ensure_ascii=False, default=str)
    return text.encode() + b"\n"


def _append(path: Path, line: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # One write() of a whole line in O_APPEND mode: lines from concurrent writers never mix.
    # The lines hold subscriber data: only our user may read a new file, and a symlink
    # planted at the path is refused rather than followed (ELOOP, a fatal OSError).
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(path, flags, 0o600)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


class AppendJsonl(Action[Params]):
    """Append one JSON line per event to a file and fsync it."""

    key: ClassVar[str] = "append_jsonl"
    summary = "append the event to a JSON-lines file"

    async def run(self, ctx: ActionContext, event: StoredEvent, params: Params) -> ActionResult:
        """Append and fsync one line; a full disk is retried, a bad path is fatal."""
        path = Path(params.path)
        try:
            await asyncio.to_thread(_append, path, line_for(ctx, event))
        except (IsADirectoryError, NotADirectoryError, PermissionError) as exc:
            raise FatalError(f"cannot append to {path}: {exc.strerror}") from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise FatalError(f"cannot append to {path}: it is a symbolic link") from None
            raise RetriableError(f"cannot append to {path}: {exc.strerror or exc}") from None
        return ActionResult(summary=f"appended {event.item_key} to {path.name}")
