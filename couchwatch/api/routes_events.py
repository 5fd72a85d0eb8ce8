"""`POST /v1/events`: a batch of events, validated like `couchwatch ingest`."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field

from couchwatch.api.auth import Ingest
from couchwatch.api.deps import CouchDep, SettingsDep
from couchwatch.api.events_batch import store_events

router = APIRouter(prefix="/v1", tags=["events"])


class EventBatch(BaseModel):
    """Events as the event document describes them (entity field, timestamp, ...)."""

    events: list[Any] = Field(description="Event objects; invalid ones are quarantined.")


class ItemOut(BaseModel):
    index: int
    status: Literal["stored", "duplicate", "conflict", "quarantined"] = Field(
        description="`conflict`: the item's `_id` already held a different event; the item is "
        "stored under the new `id` (`conflict_with` is the id it asked for)."
    )
    id: str | None = None
    reason: str | None = None
    conflict_with: str | None = None


class BatchOut(BaseModel):
    stored: int
    duplicates: int
    conflicts: int = Field(description="Stored under a new id (their id held another event).")
    quarantined: int
    items: list[ItemOut]


@router.post(
    "/events",
    response_model=BatchOut,
    responses={413: {"description": "Body or item count above the limit."}},
)
def post_events(
    batch: EventBatch, request: Request, key: Ingest, couch: CouchDep, settings: SettingsDep
) -> BatchOut:
    """Store a batch; each item is `stored`, `duplicate`, `conflict` (stored under a new id:
    its `_id` held a different event) or `quarantined` with its reason."""
    limit = settings.couchwatch_api_max_events
    if len(batch.events) > limit:
        raise HTTPException(413, f"{len(batch.events)} events in one request; at most {limit}")
    results = store_events(couch, settings, batch.events, source=f"api:{key.name or key.key_id}")
    counts = {s: sum(r.status == s for r in results) for s in ("stored", "duplicate", "conflict")}
    request.app.state.metrics.count_ingested(results)
    return BatchOut(
        stored=counts["stored"],
        duplicates=counts["duplicate"],
        conflicts=counts["conflict"],
        quarantined=len(results) - sum(counts.values()),
        items=[
            ItemOut(
                index=r.index,
                status=r.status,  # type: ignore[arg-type]
                id=r.id,
                reason=r.reason,
                conflict_with=r.conflict_with,
            )
            for r in results
        ],
    )
