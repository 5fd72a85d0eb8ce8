"""The review write, shared by `couchwatch review` and `POST /v1/anomalies/{id}/review`.

A review is a human's verdict on one anomaly: `confirmed` (malicious), `dismissed` (benign) or
`open` again. Training learns from confirmed and dismissed ones; rescoring keeps the review
(`workers.store.anomalies.merge_anomaly`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from workers.couch.client import CouchClient
from workers.couch.errors import Conflict
from workers.events import canonical_timestamp
from workers.store import registry
from workers.store.anomalies import DOC_TYPE, review_block

STATUSES = ("confirmed", "dismissed", "open")
MAX_ATTEMPTS = 5


class UnknownAnomaly(KeyError):
    """No anomaly document with that id."""


def review_anomaly(
    client: CouchClient,
    db: str,
    anomaly_id: str,
    status: str,
    *,
    note: str = "",
    by: str,
    registry_db: str | None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Store a review on the anomaly and return the updated document.

    With `registry_db` (the models database), a confirmed or dismissed review first marks the
    entity's registry document (`has_reviews`), so its next training reads the reviews; before
    the review, so a failure between the two writes costs a query, never the feedback.
    Raises `UnknownAnomaly` when there is no such anomaly and `ValueError` for another status.
    A concurrent write (a rescore) is retried on the fresh revision, so neither is lost.
    """
    if status not in STATUSES:
        raise ValueError(f"review status must be one of {', '.join(STATUSES)}")
    stamp = canonical_timestamp(now or datetime.now(UTC))
    review = review_block(status, by=by, at=stamp, note=note)
    marked = registry_db is None or status == "open"
    for _ in range(MAX_ATTEMPTS):
        doc = client.get(db, anomaly_id)
        if doc is None or doc.get("type") != DOC_TYPE:
            raise UnknownAnomaly(anomaly_id)
        if not marked and registry_db is not None:
            registry.record_reviewed(client, registry_db, doc["entity"])
            marked = True
        doc["review"] = review
        doc["updated_at"] = stamp
        try:
            doc["_rev"] = client.put(db, doc)
        except Conflict:
            continue
        return doc
    raise Conflict(f"review of {anomaly_id!r} kept conflicting", status=409)
