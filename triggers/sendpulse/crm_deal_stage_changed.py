"""``sendpulse.crm_deal_stage_changed``: a CRM deal moved to another stage (step).

Each poll pages the deals (of one pipeline, if given) and compares every deal's pipeline and
step with the last poll's; ``to_step_id`` keeps only moves into that step.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, ClassVar

from pydantic import PositiveInt

from connector.plugins import ApiClient, Item, SnapshotChange, Strategy, Trigger
from triggers.sendpulse._crm import DEAL_FIELDS, DEALS, get_list, pick
from triggers.sendpulse.crm_deal_created import DealParams, pipeline_filter


class StageParams(DealParams):
    """Optionally one pipeline, and the one step a move must end in."""

    to_step_id: PositiveInt | None = None


class CrmDealStageChanged(Trigger):
    """A deal whose pipeline step differs from the last poll's."""

    key: ClassVar[str] = "sendpulse.crm_deal_stage_changed"
    Params = StageParams
    params: StageParams
    scope: ClassVar[str] = "crm"
    strategy: ClassVar[Strategy] = "fingerprint"
    item_key: ClassVar[str] = "id"
    emits: ClassVar[frozenset[SnapshotChange]] = frozenset({"changed"})
    # A deal a bad read missed for one poll comes back as a change from the stage it had,
    # not as an "added" that this trigger ignores. Deal ids are never reused.
    keeps_removed: ClassVar[bool] = True
    payload_fields = DEAL_FIELDS | {"previous_pipeline_id", "previous_step_id"}
    summary = "a CRM deal moved to another stage"
    api_calls = ("POST /crm/v1/deals/get-list (limit 100, every page)",)

    async def poll(self, client: ApiClient, since: float | None) -> AsyncIterator[Item]:
        """Every deal (of the pipeline), page by page."""
        body = {
            "filter": pipeline_filter(self.params),
            "sortBy": {"fieldName": "id", "direction": "asc"},
        }
        async for item in get_list(client, DEALS, body):
            yield item

    def fingerprint_of(self, item: Item) -> str:
        return f"{item.get('pipelineId')}:{item.get('stepId')}"

    def payload_of(self, item: Item) -> dict[str, Any]:
        return pick(item, DEAL_FIELDS)

    def changed_payload(self, payload: dict[str, Any], previous: str | None) -> dict[str, Any]:
        pipeline, _, step = (previous or "").partition(":")
        return {
            **payload,
            "previous_pipeline_id": int(pipeline) if pipeline.isdigit() else None,
            "previous_step_id": int(step) if step.isdigit() else None,
        }

    def wants(self, kind: Any, payload: Mapping[str, Any]) -> bool:
        to = self.params.to_step_id
        return to is None or payload.get("stepId") == to
