"""Store a batch of events posted to the API, validated exactly like `couchwatch ingest`.

Each item gets its own outcome: `stored`, `duplicate` (the same event is already stored under
its `_id`, or appears earlier in the batch), `conflict` (its `_id` held a *different* event: it is
stored under a new id, `workers/event_store.py`) or `quarantined` with the reason; quarantined
items are written to `<prefix>quarantine` like rejected ingest lines. Nothing is dropped
silently.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from workers import event_store
from workers.couch.client import CouchClient
from workers.events import Rejection, validate_event
from workers.settings import Settings
from workers.store.quarantine import quarantine_doc


@dataclass(frozen=True)
class ItemResult:
    """The outcome of one posted event (its position in the batch, 0-based)."""

    index: int
    status: str  # stored | duplicate | conflict | quarantined
    id: str | None = None
    reason: str | None = None
    conflict_with: str | None = None  # the id that held a different event


def _quarantined(index: int, item: Any, reason: str, source: str, now: datetime) -> dict[str, Any]:
    raw = json.dumps(item, ensure_ascii=True, default=str).encode()  # ASCII: never unencodable
    return quarantine_doc(index + 1, raw, reason, source, now)


def store_events(
    client: CouchClient,
    settings: Settings,
    items: list[Any],
    *,
    source: str,
    now: datetime | None = None,
) -> list[ItemResult]:
    """Validate and store `items`; return one result per item, in order."""
    now = now or datetime.now(UTC)
    results: dict[int, ItemResult] = {}
    events: list[dict[str, Any]] = []
    positions: list[int] = []
    quarantined: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        value = validate_event(item, entity_field=settings.entity_field, now=now)
        if isinstance(value, Rejection):
            quarantined.append(_quarantined(index, item, value.reason, source, now))
            results[index] = ItemResult(index, "quarantined", reason=value.reason)
        else:  # a repeat within the batch is settled by content, like one already stored
            positions.append(index)
            events.append(value)
    written = event_store.store(client, settings.events_db, events)
    for index, row in zip(positions, written, strict=True):
        if row.status in ("stored", "duplicate", "conflict"):
            results[index] = ItemResult(
                index, row.status, id=row.id, reason=row.reason, conflict_with=row.original_id
            )
        else:  # refused by CouchDB, or `id_mismatch`
            reason = str(row.reason)[:300]
            quarantined.append(_quarantined(index, items[index], reason, source, now))
            results[index] = ItemResult(
                index, "quarantined", id=row.id, reason=reason, conflict_with=row.original_id
            )
    if quarantined:
        failed = client.bulk_docs(settings.db_name("quarantine"), quarantined).failed
        if failed:
            raise RuntimeError(f"could not quarantine {len(failed)} rejected events")
    return [results[i] for i in range(len(items))]
