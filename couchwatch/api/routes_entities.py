"""Entities: what is normal for one (profile, model versions, recent anomalies) and its
timeline (activity per 15-minute window, anomalies with scores, thresholds, past reviews)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query

from couchwatch.api.auth import Read
from couchwatch.api.deps import CouchDep, SettingsDep, parse_range
from couchwatch.api.profile import TIMELINE_MAX_EVENTS, bin_counts, recent_events, summarize
from couchwatch.api.routes_anomalies import public
from workers.couch.client import CouchClient
from workers.engine.features import window_timedelta
from workers.events import canonical_timestamp, integer_entity, parse_timestamp
from workers.ids import Entity
from workers.settings import Settings
from workers.store import anomalies as anomaly_store
from workers.store.events import iter_entity_events
from workers.store.models import head_id
from workers.store.registry import registry_id

router = APIRouter(prefix="/v1/entities", tags=["entities"])
EntityPath = Annotated[str, Path(min_length=1, max_length=256)]
RECENT_ANOMALIES = 20
DEFAULT_TIMELINE = timedelta(days=7)
MAX_TIMELINE = timedelta(days=31)
TIMELINE_FIELDS = (
    "id",
    "window_start",
    "window_end",
    "detector",
    "score",
    "threshold",
    "severity",
    "review",
)


def resolve(couch: CouchClient, settings: Settings, name: str) -> tuple[Entity, dict[str, Any]]:
    """The registered entity id for `name` (text, or an integer id) and its registry doc; 404
    when the planner never saw it."""
    candidates: dict[str, Entity] = {registry_id(name): name}
    number = integer_entity(name)
    if number is not None:
        candidates[registry_id(number)] = number
    found = couch.get_many(settings.db_name("models"), list(candidates))
    for key, doc in found.items():
        if doc.get("type") == "entity":
            return doc.get("entity", candidates[key]), doc
    raise HTTPException(404, "unknown entity (never seen by the planner)")


def _model(couch: CouchClient, settings: Settings, entity: Entity) -> tuple[dict[str, Any], ...]:
    db = settings.db_name("models")
    head = couch.get(db, head_id(entity))
    if head is None:
        return {}, {}
    active = [v for v in head.get("versions", []) if v["version"] == head.get("active_version")]
    doc = couch.get(db, active[0]["doc_id"]) if active else None
    meta = {k: v for k, v in (doc or {}).items() if not k.startswith("_")}
    return head, meta


def _anomalies(
    couch: CouchClient,
    settings: Settings,
    entity: Entity,
    start: str | None = None,
    end: str | None = None,
) -> list[dict[str, Any]]:
    docs = anomaly_store.iter_of_entity(
        couch, settings.db_name("anomalies"), str(entity), start=start, end=end
    )
    return [public(d) for d in islice(docs, 5000)]


@router.get("/{entity_id}")
def entity(
    entity_id: EntityPath, _: Read, couch: CouchDep, settings: SettingsDep
) -> dict[str, Any]:
    """The entity's usual profile, its model (versions, thresholds) and recent anomalies."""
    ident, registry = resolve(couch, settings, entity_id)
    head, meta = _model(couch, settings, ident)
    recent = sorted(_anomalies(couch, settings, ident), key=lambda a: a["window_start"])
    return {
        "entity": ident,
        "registry": {k: v for k, v in registry.items() if not k.startswith("_")},
        "profile": summarize(recent_events(couch, settings, ident)),
        "model": {
            "active_version": head.get("active_version"),
            "versions": head.get("versions", []),
            "meta": meta,
        },
        "recent_anomalies": recent[-RECENT_ANOMALIES:][::-1],
    }


@router.get("/{entity_id}/timeline")
def timeline(
    entity_id: EntityPath,
    _: Read,
    couch: CouchDep,
    settings: SettingsDep,
    since: Annotated[str | None, Query(description="Default: 7 days before `until`.")] = None,
    until: Annotated[str | None, Query(description="Default: after the latest event.")] = None,
) -> dict[str, Any]:
    """Events per scoring window (`COUCHWATCH_WINDOW`, 15 minutes by default), anomalies with
    scores, thresholds and past reviews."""
    window = settings.couchwatch_window
    length = window_timedelta(window).to_pytimedelta()
    start, end = parse_range(since, until)
    ident, _registry = resolve(couch, settings, entity_id)
    if end is None:
        latest = recent_events(couch, settings, ident, limit=1)
        last = _parse(latest[0]["timestamp"]) + length if latest else None
        end = canonical_timestamp(last) if last else canonical_timestamp(datetime.now(UTC))
    if start is None:
        start = canonical_timestamp(_parse(end) - DEFAULT_TIMELINE)
    if start >= end:
        raise HTTPException(400, f"since {start} must be before until {end}")
    if _parse(end) - _parse(start) > MAX_TIMELINE:
        raise HTTPException(400, f"timeline range is at most {MAX_TIMELINE.days} days")
    events = list(
        islice(
            iter_entity_events(couch, settings, ident, start=start, end=end), TIMELINE_MAX_EVENTS
        )
    )
    anomalies = _anomalies(couch, settings, ident, start, end)
    _head, meta = _model(couch, settings, ident)
    reviews = [
        {"anomaly_id": a["id"], "window_start": a["window_start"], **a["review"]}
        for a in anomalies
        if (a.get("review") or {}).get("status") not in (None, "open")
    ]
    return {
        "entity": ident,
        "since": start,
        "until": end,
        "window_minutes": length / timedelta(minutes=1),
        "windows": bin_counts(events, window),
        "truncated": len(events) >= TIMELINE_MAX_EVENTS,
        "thresholds": meta.get("thresholds", {}),
        "anomalies": [
            {k: a.get(k) for k in TIMELINE_FIELDS} | {"reason": _first_reason(a)} for a in anomalies
        ],
        "reviews": reviews,
    }


def _first_reason(anomaly: dict[str, Any]) -> str | None:
    reasons = anomaly.get("reasons") or [{}]
    return reasons[0].get("text") if isinstance(reasons[0], dict) else None


def _parse(text: str) -> datetime:
    return parse_timestamp(text)
