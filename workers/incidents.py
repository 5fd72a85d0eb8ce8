"""Incidents in CouchDB: refresh them after scoring, read them, review them (docs/incidents.md).

Incident documents live in `<prefix>incidents`; the grouping itself is pure
(`workers.engine.incidents`). After `score_entities` writes anomalies, `refresh_incidents` reads
each touched entity's anomalies around the new ones (widening until the chain is covered),
groups them and upserts the incidents that hold a new anomaly (`merge_incident` keeps review and
`created_at`), then marks the anomalies with their `incident_id`. An incident that an earlier
anomaly now leads gets a new id: the old document is marked `superseded_by` it and its review
carries over. A replay writes nothing new.

Reviewing an incident writes the same review on the incident and on every one of its anomalies
(training learns from anomaly reviews).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded

from workers.couch.client import CouchClient
from workers.couch.errors import Conflict, RetryableCouchError
from workers.engine.anomaly import iso_utc
from workers.engine.incidents import group_incidents
from workers.events import canonical_timestamp, parse_timestamp
from workers.review import MAX_ATTEMPTS, STATUSES, UnknownAnomaly, review_anomaly
from workers.settings import Settings
from workers.store import anomalies as anomaly_store
from workers.store.incidents import (
    MAX_FOLLOW,
    incident_doc,
    inherit_review,
    is_incident_id,
    merge_incident,
    merge_superseded,
    supersede_incident,
)
from workers.store.runs import Run, describe

log = logging.getLogger(__name__)
Doc = dict[str, Any]
MAX_SPAN = timedelta(days=1)  # an anomaly spans at most this long (windows are minutes)
MAX_WIDEN = 20  # reads per entity while a chain keeps reaching the edge of what was read


class UnknownIncident(KeyError):
    """No incident document with that id."""


@dataclass
class RefreshResult:
    """What one refresh wrote: incident ids holding the new anomalies, and counts."""

    incident_ids: list[str] = field(default_factory=list)
    written: int = 0
    superseded: int = 0
    anomalies_marked: int = 0


def _ts(text: str) -> datetime:
    return parse_timestamp(iso_utc(text))


def _read_range(
    couch: CouchClient, db: str, entity: str, lo: datetime, hi: datetime, gap: timedelta
) -> dict[str, Doc]:
    """The entity's anomalies starting in [lo - gap - MAX_SPAN, hi + gap]."""
    docs = anomaly_store.iter_of_entity(
        couch,
        db,
        entity,
        start=iso_utc(lo - gap - MAX_SPAN),
        end=iso_utc(hi + gap + timedelta(milliseconds=1)),
    )
    return {d["_id"]: d for d in docs if d.get("type") == "anomaly"}


def _chains(
    couch: CouchClient, db: str, entity: str, new: Sequence[Mapping[str, Any]], gap_s: float
) -> tuple[dict[str, Doc], list[Any]]:
    """(anomalies read, incidents holding a new anomaly), read wide enough to cover them."""
    gap = timedelta(seconds=gap_s)
    lo = min(_ts(d["window_start"]) for d in new)
    hi = max(_ts(d.get("window_end") or d["window_start"]) for d in new)
    new_ids = {d["_id"] for d in new}
    for _ in range(MAX_WIDEN):
        pool = _read_range(couch, db, entity, lo, hi, gap)
        for d in new:
            pool.setdefault(d["_id"], dict(d))
        groups = [
            g
            for g in group_incidents(list(pool.values()), gap_s=gap_s)
            if new_ids & set(g.anomaly_ids)
        ]
        g_lo = min(_ts(g.start) for g in groups)
        g_hi = max(_ts(g.end) for g in groups)
        if g_lo >= lo and g_hi <= hi:
            return pool, groups
        lo, hi = min(lo, g_lo), max(hi, g_hi)
    log.warning("incidents of %r: chain still growing after %d reads", entity, MAX_WIDEN)
    return pool, groups


def refresh_incidents(
    couch: CouchClient,
    settings: Settings,
    anomalies: Iterable[Mapping[str, Any]],
    *,
    now: datetime | None = None,
) -> RefreshResult:
    """Build or refresh the incidents of the entities of `anomalies` (just written); idempotent.

    Returns the ids of the incidents that hold one of `anomalies`, in entity/start order.
    """
    result = RefreshResult()
    stamp = now or datetime.now(UTC)
    adb, idb = settings.db_name("anomalies"), settings.db_name("incidents")
    gap_s = settings.couchwatch_incident_gap_s
    by_entity: dict[str, list[Mapping[str, Any]]] = {}
    for doc in anomalies:
        by_entity.setdefault(str(doc["entity"]), []).append(doc)
    for entity, new in sorted(by_entity.items()):
        pool, groups = _chains(couch, adb, entity, new, gap_s)
        previous = {
            g.incident_id: sorted(
                {
                    str(pool[a]["incident_id"])
                    for a in g.anomaly_ids
                    if pool[a].get("incident_id") not in (None, g.incident_id)
                }
            )
            for g in groups
        }
        old_ids = [i for ids in previous.values() for i in ids]
        existing = couch.get_many(idb, [g.incident_id for g in groups] + old_ids)
        fresh: list[Doc] = []
        folded: list[Doc] = []
        for g in groups:
            olds = [existing[i] for i in previous[g.incident_id] if i in existing]
            current = existing.get(g.incident_id)
            doc = merge_incident(current, inherit_review(incident_doc(g, stamp), olds))
            if doc != current:  # a replay changes nothing and writes nothing
                fresh.append(doc)
            folded += [
                supersede_incident(o, g.incident_id, stamp)
                for o in olds
                if o.get("superseded_by") != g.incident_id
            ]
        _check(couch.bulk_upsert(idb, fresh, merge=merge_incident), "incidents")
        _check(couch.bulk_upsert(idb, folded, merge=merge_superseded), "superseded incidents")
        marks = [
            {**pool[a], "incident_id": g.incident_id}
            for g in groups
            for a in g.anomaly_ids
            if pool[a].get("incident_id") != g.incident_id
        ]
        _check(couch.bulk_upsert(adb, marks, merge=_merge_mark), "anomaly incident ids")
        result.incident_ids += [g.incident_id for g in groups]
        result.written += len(fresh)
        result.superseded += len(folded)
        result.anomalies_marked += len(marks)
    return result


def after_scoring(
    couch: CouchClient, settings: Settings, written: Sequence[Mapping[str, Any]], run: Run
) -> None:
    """Refresh the incidents of anomalies `score_entities` just wrote, recorded in `run`.

    CouchDB being unavailable propagates (the task retries; the refresh is idempotent); any
    other failure is recorded in the run and logged: the anomalies stay written and their
    notifications fall back to one per anomaly.
    """
    if not written:
        return
    try:
        result = refresh_incidents(couch, settings, written)
    except (RetryableCouchError, SoftTimeLimitExceeded):
        raise
    except Exception as exc:
        log.exception("incident refresh failed")
        run.details["incidents_error"] = describe(exc)
        return
    run.details["incidents"] = len(result.incident_ids)
    if result.superseded:
        run.details["incidents_superseded"] = result.superseded


def _merge_mark(old: Doc, new: Doc) -> Doc:
    return {**old, "incident_id": new["incident_id"]}


def _check(result: Any, what: str) -> None:
    if result.failed:
        first = result.failed[0]
        raise RuntimeError(f"{len(result.failed)} {what} refused by CouchDB: {first.reason}")


def get_incident(couch: CouchClient, settings: Settings, incident_id: str) -> Doc:
    """The incident document, following `superseded_by` to the current one.

    Raises `UnknownIncident` when there is none.
    """
    db = settings.db_name("incidents")
    current = incident_id
    for _ in range(MAX_FOLLOW):
        doc = couch.get(db, current)
        if doc is None or doc.get("type") != "incident":
            raise UnknownIncident(incident_id)
        if not doc.get("superseded_by"):
            return doc
        current = str(doc["superseded_by"])
    raise UnknownIncident(incident_id)


def incident_anomalies(
    couch: CouchClient, settings: Settings, incident: Mapping[str, Any]
) -> list[Doc]:
    """The incident's anomaly documents, earliest window first."""
    found = couch.get_many(settings.db_name("anomalies"), list(incident.get("anomaly_ids") or []))
    docs = [d for d in found.values() if d.get("type") == "anomaly"]
    return sorted(docs, key=lambda d: (str(d.get("window_start")), d["_id"]))


def review_incident(
    couch: CouchClient,
    settings: Settings,
    incident_id: str,
    status: str,
    *,
    note: str = "",
    by: str,
    now: datetime | None = None,
) -> Doc:
    """Store one review on the incident and on each of its anomalies; return the incident.

    A superseded id reviews the incident it was folded into. Raises `UnknownIncident` or
    `ValueError` (status). Anomalies are written first, so a crash leaves the incident open and
    a second review completes it.
    """
    if status not in STATUSES:
        raise ValueError(f"review status must be one of {', '.join(STATUSES)}")
    when = now or datetime.now(UTC)
    stamp = canonical_timestamp(when)
    review = anomaly_store.review_block(status, by=by, at=stamp, note=note)
    adb, idb = settings.db_name("anomalies"), settings.db_name("incidents")
    for _ in range(MAX_ATTEMPTS):
        doc = get_incident(couch, settings, incident_id)
        for anomaly_id in doc.get("anomaly_ids") or []:
            try:
                review_anomaly(
                    couch,
                    adb,
                    anomaly_id,
                    status,
                    note=note,
                    by=by,
                    registry_db=settings.db_name("models"),
                    now=when,
                )
            except UnknownAnomaly:  # deleted meanwhile: nothing to learn from
                continue
        doc["review"] = review
        doc["updated_at"] = stamp
        try:
            doc["_rev"] = couch.put(idb, doc)
        except Conflict:  # a refresh grew it meanwhile: review the new anomalies too
            continue
        return doc
    raise Conflict(f"review of {incident_id!r} kept conflicting", status=409)


__all__ = [
    "RefreshResult",
    "UnknownIncident",
    "after_scoring",
    "get_incident",
    "incident_anomalies",
    "is_incident_id",
    "refresh_incidents",
    "review_incident",
]
