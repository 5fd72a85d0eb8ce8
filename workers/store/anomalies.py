"""The anomaly document: `_id` rule, shape, the merge that keeps human review, and its queries.

`_id` is `anomaly:` + a hash of (entity, detector kind, window start or event id): a rescore
produces the same `_id`, and odd entity ids (`$gt`, `../_all_docs`, `%2F`, unicode) are safe in
a URL path. :func:`document` maps the engine's :class:`Finding` to a fresh document (review
`open`); :func:`merge_anomaly` updates the scores of a stored one but keeps `created_at` and
never resets a human `review`. :func:`feedback` turns reviewed documents into the engine's
plain :class:`Feedback` (event ids by verdict).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from workers.couch.client import BulkResult, CouchClient
from workers.engine.anomaly import Finding, finding, iso_utc
from workers.engine.feedback import Feedback
from workers.ids import Entity

Doc = dict[str, Any]
ANOMALY_ID_PREFIX = "anomaly:"
DOC_TYPE = "anomaly"
REVIEW_STATUSES = ("open", "confirmed", "dismissed")
REVIEWED = ("confirmed", "dismissed")  # the verdicts training learns from
SCORED_FIELDS = (
    "score",
    "threshold",
    "severity",
    "confidence",
    "reasons",
    "model",
    "detector_scores",
    "event_ids",
    "window_end",
)
# index on [entity, window_start]: one entity's anomalies in time order
BY_ENTITY = "by-entity"
BY_ENTITY_FIELDS = ("entity", "window_start")
# keyset-page indexes (`workers/store/pages.py`), by the equality filter in front of
# [window_start, _id] (on incidents: [start, _id])
PAGE_TIME = "page-time"
PAGE_ENTITY = "page-entity"
PAGE_STATUS = "page-status"
PAGE_SEVERITY = "page-severity"
PAGE_INDEXES: dict[str, tuple[str, ...]] = {
    PAGE_TIME: (),
    PAGE_ENTITY: ("entity",),
    PAGE_STATUS: ("review.status",),
    PAGE_SEVERITY: ("severity",),
}


def anomaly_id(entity: str, detector: str, key: str) -> str:
    """Return the deterministic document id for (entity, detector kind, window start/event id)."""
    digest = hashlib.sha256("\x1f".join((str(entity), detector, key)).encode("utf-8"))
    return ANOMALY_ID_PREFIX + digest.hexdigest()[:40]


MAX_REVIEWER_CHARS = 200
MAX_NOTE_CHARS = 2000


def open_review() -> Doc:
    """The review block of a fresh anomaly (or incident): `open`, by nobody."""
    return {"status": "open", "by": None, "at": None, "note": None}


def review_block(status: str, *, by: str, at: str, note: str = "") -> Doc:
    """A human's review block (anomaly or incident): `status` one of REVIEW_STATUSES, `by`
    and `note` cut to their limits, `at` canonical UTC text."""
    if status not in REVIEW_STATUSES:
        raise ValueError(f"review status must be one of {', '.join(REVIEW_STATUSES)}")
    return {
        "status": status,
        "by": by[:MAX_REVIEWER_CHARS],
        "at": at,
        "note": note[:MAX_NOTE_CHARS],
    }


def document(found: Finding, now: datetime | None = None) -> Doc:
    """A fresh anomaly document of `found` (review `open`, created and updated `now`)."""
    stamp = iso_utc(now or datetime.now(UTC))
    return {
        "_id": anomaly_id(found.entity, found.detector, found.identity),
        "type": DOC_TYPE,
        "entity": found.entity,
        "entity_field": found.entity_field,
        "detector": found.detector,
        "window_start": found.window_start,
        "window_end": found.window_end,
        "event_ids": list(found.event_ids),
        "score": found.score,
        "threshold": found.threshold,
        "severity": found.severity,
        "confidence": found.confidence,
        "reasons": [dict(r) for r in found.reasons],
        "detector_scores": dict(found.detector_scores),
        "model": {"id": found.model_id, "version": found.model_version},
        "created_at": stamp,
        "updated_at": stamp,
        "review": open_review(),
    }


def documents(findings: Iterable[Finding], now: datetime | None = None) -> list[Doc]:
    """Fresh anomaly documents of `findings`, in order."""
    return [document(f, now) for f in findings]


def make_anomaly(
    *,
    entity: str,
    entity_field: str,
    detector: str,
    window_start: Any,
    window_end: Any,
    event_ids: Sequence[str],
    score: float,
    threshold: float,
    severity: str,
    confidence: float,
    reasons: list[dict[str, Any]],
    model: Mapping[str, Any],
    now: datetime | None = None,
    key: str | None = None,
    detector_scores: Mapping[str, float] | None = None,
) -> Doc:
    """One anomaly document from raw values (tests, tools); `model` (`{id, version}` as the
    fleet writes it) is stored as given.

    `key` defaults to the window start; pass the event id for a single-event anomaly.
    """
    found = finding(
        entity=entity,
        entity_field=entity_field,
        detector=detector,
        window_start=window_start,
        window_end=window_end,
        event_ids=event_ids,
        score=score,
        threshold=threshold,
        severity=severity,
        confidence=confidence,
        reasons=reasons,
        model_id=str(model.get("id", "")),
        model_version=int(model.get("version", 0)),
        key=key,
        detector_scores=detector_scores,
    )
    return {**document(found, now), "model": dict(model)}


def merge_anomaly(existing: Mapping[str, Any] | None, new: Mapping[str, Any]) -> Doc:
    """Return `new` merged onto `existing` for an idempotent rescore.

    Scores, reasons and model come from `new`; `_rev`, `created_at` and `review` (and any
    field `new` does not set) are kept from `existing`. `updated_at` only moves when a
    scored field changed, so replaying the same rescore yields an identical document.
    """
    return merge_refresh(existing, new, SCORED_FIELDS, what="merge_anomaly")


def merge_refresh(
    existing: Mapping[str, Any] | None,
    new: Mapping[str, Any],
    fields: Sequence[str],
    *,
    what: str,
) -> Doc:
    """Return `new`'s `fields` merged onto `existing` (same `_id`); the rest is kept.

    `created_at` and a set `review` come from `existing`; `updated_at` moves only when one of
    `fields` changed. `what` names the caller in the different-`_id` error.
    """
    if not existing:
        return dict(new)
    if existing.get("_id") != new.get("_id"):
        raise ValueError(f"{what}: documents have different _id")
    merged = {**existing}
    changed = any(existing.get(f) != new.get(f) for f in fields)
    for name in fields:
        if name in new:
            merged[name] = new[name]
    merged["created_at"] = existing.get("created_at", new.get("created_at"))
    merged["review"] = existing.get("review") or new.get("review")
    merged["updated_at"] = new.get("updated_at") if changed else existing.get("updated_at")
    return merged


def feedback(anomalies: Iterable[Mapping[str, Any]]) -> Feedback:
    """The engine's feedback from anomaly documents: event ids by `review.status`.

    An event in both a confirmed and a dismissed anomaly counts as confirmed (safer).
    """
    confirmed: set[str] = set()
    dismissed: set[str] = set()
    for doc in anomalies:
        status = (doc.get("review") or {}).get("status")
        ids = {str(e) for e in doc.get("event_ids") or ()}
        if status == "confirmed":
            confirmed |= ids
        elif status == "dismissed":
            dismissed |= ids
    return Feedback(confirmed=frozenset(confirmed), dismissed=frozenset(dismissed - confirmed))


def upsert_all(couch: CouchClient, db: str, docs: Sequence[Doc]) -> BulkResult:
    """Write anomaly documents, merging onto stored ones (reviews kept); returns the rows."""
    return couch.bulk_upsert(db, docs, merge=merge_anomaly)


def iter_of_entity(
    couch: CouchClient,
    db: str,
    entity: Entity,
    *,
    start: str | None = None,
    end: str | None = None,
) -> Iterator[Doc]:
    """The entity's anomalies with `start <= window_start < end`, in time order (index-backed)."""
    yield from couch.iter_by_key(
        db,
        selector={"entity": entity},
        key_field="window_start",
        start=start,
        end=end,
        sort_prefix=("entity",),
        index=(BY_ENTITY, BY_ENTITY),
    )


def reviewed(couch: CouchClient, db: str, entity: Entity) -> list[Doc]:
    """The entity's anomalies reviewed `confirmed` or `dismissed` (feedback for training)."""
    docs = iter_of_entity(couch, db, entity)
    return [d for d in docs if (d.get("review") or {}).get("status") in REVIEWED]
