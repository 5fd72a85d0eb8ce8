"""Reading an entity's events from the events database (paged, backed by the events index).

Event documents are the producers'; their shape and `_id` rule are `workers/events.py`'s, the
write is `workers/event_store.py`'s. This module owns the events index (`events_index`, one per
entity field) and the queries on it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from workers.couch.client import DEFAULT_PAGE_SIZE, CouchClient
from workers.events import Rejection, canonical_timestamp, validate_event
from workers.ids import Entity
from workers.settings import Settings

Doc = dict[str, Any]
EVENTS_BY_ENTITY_TIME = "couchwatch-entity-time"


def events_index(settings: Settings) -> tuple[str, str]:
    """Return (design doc, index name) of the events index on [entity field, timestamp]."""
    name = f"{EVENTS_BY_ENTITY_TIME}-{settings.entity_field}"
    return name, name


def events_index_fields(settings: Settings) -> tuple[str, str]:
    """The fields of the events index: [entity field, timestamp]."""
    return settings.entity_field, "timestamp"


def recent_of_entity(
    client: CouchClient, settings: Settings, entity: Entity, *, limit: int
) -> list[Doc]:
    """The entity's `limit` most recent event documents, newest first (one `_find`; not
    validated: the caller leaves out what fails `validate_event`)."""
    field = settings.entity_field
    docs, _ = client.find_page(
        settings.events_db,
        {
            "selector": {field: entity, "timestamp": {"$gt": None}},
            "sort": [{field: "desc"}, {"timestamp": "desc"}],
            "use_index": list(events_index(settings)),
            "limit": limit,
        },
    )
    return docs


def iter_entity_events(
    client: CouchClient,
    settings: Settings,
    entity: Entity,
    *,
    start: str | None = None,
    end: str | None = None,
    page_size: int | None = None,
    now: datetime | None = None,
) -> Iterator[Doc]:
    """Yield the entity's events with `start <= timestamp < end` (canonical UTC text), in order.

    `page_size` bounds each request (a caller that stops early reads no more than it needs).
    `now` (default: the real time) is the clock future timestamps are judged against.

    Documents that fail `validate_event` are skipped: a producer may write anything straight to
    the events database, and the planner quarantines such documents, but they stay there and
    match the entity's query. Trained or scored on, one `bytes_sent: "1e308"` makes the
    population profile hold infinity, which no JSON document can store (tests/integration/
    test_bad_input.py).
    """
    now = now or utc_now()
    for doc in client.iter_by_key(
        settings.events_db,
        selector={settings.entity_field: entity},
        key_field="timestamp",
        start=start,
        end=end,
        sort_prefix=(settings.entity_field,),
        index=events_index(settings),
        page_size=page_size or DEFAULT_PAGE_SIZE,
    ):
        if not isinstance(
            validate_event(doc, entity_field=settings.entity_field, now=now), Rejection
        ):
            yield doc


def history_start(now: datetime, days: int) -> datetime:
    """Where a training history of `days` days starts: the UTC midnight `days` days before
    `now` (whole days, so a stored history summary and a full read cover the same events)."""
    start = now.astimezone(UTC) - timedelta(days=days)
    return start.replace(hour=0, minute=0, second=0, microsecond=0)


def training_history(
    client: CouchClient,
    settings: Settings,
    entity: Entity,
    *,
    now: datetime,
    start: datetime | None = None,
) -> list[Doc]:
    """The entity's events from `start` (default: the start of its `COUCHWATCH_HISTORY_DAYS`
    history, :func:`history_start`) on."""
    since = start or history_start(now, settings.couchwatch_history_days)
    return list(
        iter_entity_events(client, settings, entity, start=canonical_timestamp(since), now=now)
    )


def utc_now() -> datetime:
    return datetime.now(UTC)
