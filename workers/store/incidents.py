"""The incident document: shape, the merge that keeps review, superseding, and its queries.

`_id` is the engine's grouping identity (`workers.engine.incidents.incident_id`: `incident:` +
a hash of the entity and its earliest anomaly's id), so a rescore, or a later anomaly that
extends the incident, keeps it. When an earlier anomaly joins, the id changes: the fleet writes
the new incident and marks the old documents `superseded_by` it (:func:`supersede_incident`);
the new one inherits their review if it has none (:func:`inherit_review`). Listings hide
superseded incidents. Incidents use the anomalies' page index names, keyed on [start, _id].
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from workers.couch.client import CouchClient
from workers.engine.anomaly import iso_utc
from workers.engine.incidents import INCIDENT_ID_PREFIX, Incident, incident_id
from workers.ids import Entity
from workers.store.anomalies import PAGE_ENTITY, PAGE_INDEXES, merge_refresh, open_review

__all__ = [
    "INCIDENT_ID_PREFIX",
    "MAX_FOLLOW",
    "PAGE_INDEXES",
    "incident_doc",
    "incident_id",
    "inherit_review",
    "is_incident_id",
    "iter_of_entity",
    "merge_incident",
    "merge_superseded",
    "supersede_incident",
]

Doc = dict[str, Any]
DOC_TYPE = "incident"
MAX_FOLLOW = 20  # superseded_by links followed at most
CONTENT_FIELDS = (
    "entity_field",
    "start",
    "end",
    "anomaly_ids",
    "n_anomalies",
    "severity",
    "score",
    "detectors",
    "reasons",
    "superseded_by",
)


def incident_doc(incident: Incident, now: datetime | str) -> dict[str, Any]:
    """Return a fresh incident document (``type`` ``"incident"``, review ``open``)."""
    stamp = iso_utc(now)
    return {
        "_id": incident.incident_id,
        "type": DOC_TYPE,
        "entity": incident.entity,
        "entity_field": incident.entity_field,
        "start": incident.start,
        "end": incident.end,
        "anomaly_ids": list(incident.anomaly_ids),
        "n_anomalies": incident.n_anomalies,
        "severity": incident.severity,
        "score": incident.score,
        "detectors": list(incident.detectors),
        "reasons": [dict(r) for r in incident.reasons],
        "superseded_by": None,
        "created_at": stamp,
        "updated_at": stamp,
        "review": open_review(),
    }


def merge_incident(existing: Mapping[str, Any] | None, new: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``new`` merged onto ``existing`` (same ``_id``) for an idempotent refresh.

    Content (span, anomalies, severity, score, detectors, reasons, ``superseded_by``) comes from
    ``new``; ``_rev``, ``created_at``, ``review`` and fields ``new`` does not set are kept.
    ``updated_at`` moves only when content changed, so a replay yields an identical document.
    """
    return merge_refresh(existing, new, CONTENT_FIELDS, what="merge_incident")


def supersede_incident(existing: Mapping[str, Any], by: str, now: datetime | str) -> dict[str, Any]:
    """Return ``existing`` marked as folded into incident ``by`` (unchanged if it already is)."""
    if existing.get("superseded_by") == by:
        return dict(existing)
    return {**existing, "superseded_by": by, "updated_at": iso_utc(now)}


def inherit_review(
    doc: Mapping[str, Any], superseded: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """Return ``doc`` with the latest non-open review of ``superseded`` if its own is open."""
    own = doc.get("review") or {}
    if own.get("status", "open") != "open":
        return dict(doc)
    reviewed = [
        s["review"] for s in superseded if (s.get("review") or {}).get("status", "open") != "open"
    ]
    if not reviewed:
        return dict(doc)
    latest = max(reviewed, key=lambda r: str(r.get("at") or ""))
    return {**doc, "review": dict(latest)}


def merge_superseded(old: Doc, new: Doc) -> Doc:
    """`old` marked superseded by `new["superseded_by"]` (a merge for `bulk_upsert`)."""
    return supersede_incident(old, str(new["superseded_by"]), str(new["updated_at"]))


def is_incident_id(value: str) -> bool:
    """True for an id of the incident form (`incident:` + hash)."""
    return value.startswith(INCIDENT_ID_PREFIX)


def iter_of_entity(couch: CouchClient, db: str, entity: Entity) -> Iterator[Doc]:
    """The entity's incidents (superseded ones too) in start order (index-backed)."""
    yield from couch.iter_by_key(
        db,
        selector={"entity": entity},
        key_field="start",
        sort_prefix=("entity",),
        index=(PAGE_ENTITY, PAGE_ENTITY),
    )
