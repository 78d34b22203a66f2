"""What the CRM triggers share: the two get-list calls, paged, and their payloads.

Both lists are POST calls with JSON bodies (reference §6): contacts answer
``{data: {list, total}}``, deals ``{data: [...], meta: {total}}``. Both sort, so the triggers
read newest first and stop at the first page that reaches their cursor. A deal's payload has
no contacts: the ``Deal`` schema has none (they are ``GET /deals/{id}/contacts``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from connector.http_client.api_errors import MalformedResponse, UnexpectedResponse
from connector.plugins import ApiClient, Item

PAGE = 100
CONTACTS = "/crm/v1/contacts/get-list"
DEALS = "/crm/v1/deals/get-list"
CONTACT_FIELDS = frozenset(
    {"id", "firstName", "lastName", "emails", "phones", "responsibleId", "createdAt", "updatedAt"}
)
DEAL_FIELDS = frozenset(
    {
        "id",
        "name",
        "pipelineId",
        "stepId",
        "price",
        "currency",
        "responsibleId",
        "createdAt",
        "updatedAt",
    }
)


def _rows(answer: Any) -> tuple[list[Item], int | None]:
    data = answer.get("data") if isinstance(answer, dict) else None
    if isinstance(data, dict):
        rows, total = data.get("list"), data.get("total")
    else:
        meta = answer.get("meta") if isinstance(answer, dict) else None
        rows, total = data, meta.get("total") if isinstance(meta, dict) else None
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        # Read as an empty page, this would end the list early: the deal stage trigger would
        # take every deal after it for gone, and miss their changes.
        raise MalformedResponse(f"expected a CRM list page, got {type(answer).__name__}")
    return rows, (total if isinstance(total, int) else None)


async def get_list(
    client: ApiClient,
    path: str,
    body: dict[str, Any],
    *,
    stop: Callable[[list[Item]], bool] = lambda rows: False,
) -> AsyncIterator[Item]:
    """Every row of a CRM list, a page at a time, until a short page, the total or ``stop``."""
    offset = 0
    while True:
        answer = await client.request("POST", path, json={**body, "limit": PAGE, "offset": offset})
        rows, total = _rows(answer)
        if len(rows) < PAGE and total is not None and offset + len(rows) < total:
            # A short page before the total: the API's page limit is below ours, and reading
            # it as the end would lose every row after it.
            raise UnexpectedResponse(
                f"{path}: {len(rows)} rows of {PAGE} asked at offset {offset}, total {total}"
            )
        for row in rows:
            yield row
        offset += len(rows)
        if len(rows) < PAGE or (total is not None and offset >= total) or stop(rows):
            return


def pick(item: Item, fields: frozenset[str]) -> dict[str, Any]:
    return {name: item.get(name) for name in sorted(fields)}
