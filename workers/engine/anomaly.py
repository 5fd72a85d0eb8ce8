"""The anomaly document contract and its idempotent merge.

``_id`` is deterministic from (entity, detector kind, window start or event id) and is a hash,
so odd entity ids (``$gt``, ``../_all_docs``, ``%2F``, unicode) are safe in a URL path. A rescore
produces the same ``_id``; :func:`merge_anomaly` updates the scores but keeps ``created_at`` and
never resets a human ``review``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from workers.events import canonical_timestamp

ANOMALY_ID_PREFIX = "anomaly:"
REVIEW_STATUSES = ("open", "confirmed", "dismissed")
SEVERITIES = ("low", "medium", "high")
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


def iso_utc(value: Any) -> str:
    """Return ``value`` (datetime, Timestamp or ISO text) as canonical UTC ``...T..:..:...sssZ``."""
    return canonical_timestamp(pd.Timestamp(value))  # naive is UTC


def anomaly_id(entity: str, detector: str, key: str) -> str:
    """Return the deterministic document id for (entity, detector kind, window start/event id)."""
    digest = hashlib.sha256("\x1f".join((str(entity), detector, key)).encode("utf-8"))
    return ANOMALY_ID_PREFIX + digest.hexdigest()[:40]


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
) -> dict[str, Any]:
    """Build one anomaly document (a fresh one: review ``open``).

    ``key`` defaults to the window start; pass the event id for a single-event anomaly.
    """
    stamp = iso_utc(now or datetime.now(UTC))
    start = iso_utc(window_start)
    return {
        "_id": anomaly_id(entity, detector, key if key is not None else start),
        "type": "anomaly",
        "entity": str(entity),
        "entity_field": entity_field,
        "detector": detector,
        "window_start": start,
        "window_end": iso_utc(window_end),
        "event_ids": [str(e) for e in event_ids],
        "score": float(score),
        "threshold": float(threshold),
        "severity": severity,
        "confidence": float(confidence),
        "reasons": list(reasons),
        "detector_scores": {k: float(v) for k, v in (detector_scores or {}).items()},
        "model": dict(model),
        "created_at": stamp,
        "updated_at": stamp,
        "review": {"status": "open", "by": None, "at": None, "note": None},
    }


def merge_anomaly(existing: Mapping[str, Any] | None, new: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``new`` merged onto ``existing`` for an idempotent rescore.

    Scores, reasons and model come from ``new``; ``_rev``, ``created_at`` and ``review`` (and any
    field ``new`` does not set) are kept from ``existing``. ``updated_at`` only moves when a
    scored field changed, so replaying the same rescore yields an identical document.
    """
    return merge_refresh(existing, new, SCORED_FIELDS, what="merge_anomaly")


def merge_refresh(
    existing: Mapping[str, Any] | None,
    new: Mapping[str, Any],
    fields: Sequence[str],
    *,
    what: str,
) -> dict[str, Any]:
    """Return ``new``'s ``fields`` merged onto ``existing`` (same ``_id``); the rest is kept.

    ``created_at`` and a set ``review`` come from ``existing``; ``updated_at`` moves only when
    one of ``fields`` changed. ``what`` names the caller in the different-``_id`` error.
    """
    if not existing:
        return dict(new)
    if existing.get("_id") != new.get("_id"):
        raise ValueError(f"{what}: documents have different _id")
    merged = {**existing}
    changed = any(existing.get(f) != new.get(f) for f in fields)
    for field in fields:
        if field in new:
            merged[field] = new[field]
    merged["created_at"] = existing.get("created_at", new.get("created_at"))
    merged["review"] = existing.get("review") or new.get("review")
    merged["updated_at"] = new.get("updated_at") if changed else existing.get("updated_at")
    return merged
