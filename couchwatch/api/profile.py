"""What is normal for one entity, and its activity timeline, from CouchDB reads.

Pure summaries (`summarize`, `bin_counts`) over event documents; the reads stay small: the most
recent `PROFILE_EVENTS` events for the profile, at most `TIMELINE_MAX_EVENTS` for a timeline.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from workers.couch.client import CouchClient
from workers.engine.context import ua_families
from workers.events import Rejection, validate_event
from workers.ids import Entity
from workers.scoring import window_floor
from workers.settings import Settings
from workers.store.events import recent_of_entity

PROFILE_EVENTS = 2000
TIMELINE_MAX_EVENTS = 50_000
TOP = 5

Doc = dict[str, Any]


def recent_events(
    client: CouchClient, settings: Settings, entity: Entity, *, limit: int = PROFILE_EVENTS
) -> list[Doc]:
    """The entity's `limit` most recent events, newest first (one index-backed `_find`).

    Documents that fail `validate_event` (a producer's write straight to CouchDB, quarantined by
    the planner) are left out, as in `iter_entity_events`: on CouchDB 3 one of them can hold a
    400-digit `bytes_sent`, which `float()` cannot convert.
    """
    field = settings.entity_field
    docs = recent_of_entity(client, settings, entity, limit=limit)
    now = datetime.now(UTC)
    return [
        d for d in docs if not isinstance(validate_event(d, entity_field=field, now=now), Rejection)
    ]


def _top(values: Iterable[Any]) -> list[dict[str, Any]]:
    counts = Counter(v for v in values if v not in (None, ""))
    total = sum(counts.values()) or 1
    return [{"value": v, "share": round(n / total, 3)} for v, n in counts.most_common(TOP)]


def _families(agent: Any) -> tuple[str | None, str | None, str | None]:
    """(browser, os, device) of a user agent as the model reads it (`ua_families`, ua-parser),
    so the analyst sees the devices the model scored."""
    return ua_families(agent) if isinstance(agent, str) and agent else (None, None, None)


def summarize(events: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Usual countries, devices, browsers, hours (UTC) and volumes of `events`.

    Volumes: events per active day (median and max), median `bytes_sent` and `latency_ms`.
    """
    if not events:
        return {"events_read": 0}
    stamps = sorted(str(e["timestamp"]) for e in events)
    per_day = Counter(s[:10] for s in stamps)
    hours = Counter(int(s[11:13]) for s in stamps)

    def median(name: str) -> float | None:
        values = [float(e[name]) for e in events if isinstance(e.get(name), int | float)]
        return statistics.median(values) if values else None

    return {
        "events_read": len(events),
        "first": stamps[0],
        "last": stamps[-1],
        "countries": _top(e.get("country") for e in events),
        "cities": _top(e.get("city") for e in events),
        "devices": _top(_families(e.get("user_agent"))[2] for e in events),
        "browsers": _top(_families(e.get("user_agent"))[0] for e in events),
        "os": _top(_families(e.get("user_agent"))[1] for e in events),
        "types": _top(e.get("type") for e in events),
        "endpoints": _top(e.get("endpoint") for e in events),
        "hours_utc": [hours.get(h, 0) for h in range(24)],
        "usual_hours_utc": sorted(h for h, n in hours.items() if n >= 0.05 * len(stamps)),
        "events_per_active_day": {
            "median": statistics.median(per_day.values()),
            "max": max(per_day.values()),
        },
        "median_bytes_sent": median("bytes_sent"),
        "median_latency_ms": median("latency_ms"),
    }


def bin_counts(events: Iterable[Mapping[str, Any]], window: str) -> list[dict[str, Any]]:
    """Event counts per scoring window (`COUCHWATCH_WINDOW`; only windows with events), oldest
    first: the windows the model scored."""
    counts = Counter(window_floor(str(e["timestamp"]), window) for e in events)
    return [{"window_start": w, "events": n} for w, n in sorted(counts.items())]
