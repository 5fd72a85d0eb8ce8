"""The notification document: one per (alert, channel), ever, in `<prefix>notifications`.

An alert is an incident (at one severity: an incident notifies again only when it escalates)
or, for an anomaly not grouped into an incident, the anomaly itself.

Fields: `_id` (deterministic from `alert_key` and channel), `anomaly_id` (the alert's id: an
anomaly or an incident), `incident_id` (or null), `channel`, `target`
(host only), `entity`, `mode` (`immediate` | `digest`), `status` (`pending` | `sent` |
`failed`), `attempts`, `last_error`, `next_attempt_at` (when a pending one is due; also the
lease while a worker sends it), `created_at`, `updated_at`, `sent_at`, `delivery_id` (the message
it went out in; shared by the members of a digest), `digest_size`, and `anomaly` (a summary:
entity, severity, score, detector, window, reasons in words; for an incident `kind` is
`incident`, the window is its span and `n_anomalies` its size).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from workers.couch.client import CouchClient
from workers.events import canonical_timestamp

Doc = dict[str, Any]
NOTIFICATION_ID_PREFIX = "notification:"
DIGEST_ID_PREFIX = "digest:"
STATUSES = ("pending", "sent", "failed")
MODES = ("immediate", "digest")
MAX_REASONS = 5
MAX_ERROR_CHARS = 300
SEVERITIES = ("low", "medium", "high")
# indexes of the notifications database
BY_STATUS_DUE = "by-status-due"  # [status, next_attempt_at]: pending ones by when they are due
BY_CREATED = "by-created"  # [created_at]: the newest first
BY_STATUS_CREATED = "by-status-created"  # [status, created_at]: the newest failed ones
INDEXES: dict[str, tuple[str, ...]] = {
    BY_STATUS_DUE: ("status", "next_attempt_at"),
    BY_CREATED: ("created_at",),
    BY_STATUS_CREATED: ("status", "created_at"),
}


def notification_id(anomaly_id: str, channel: str) -> str:
    """The deterministic `_id` of the notification of `anomaly_id` on `channel`."""
    digest = hashlib.sha256(f"{anomaly_id}\x1f{channel}".encode()).hexdigest()[:40]
    return NOTIFICATION_ID_PREFIX + digest


def delivery_id(notification_ids: Sequence[str]) -> str:
    """Id of one sent message: the notification's own id, or a digest id over its members."""
    if len(notification_ids) == 1:
        return notification_ids[0]
    joined = "\x1f".join(sorted(notification_ids)).encode()
    return DIGEST_ID_PREFIX + hashlib.sha256(joined).hexdigest()[:40]


def alert_key(alert: Mapping[str, Any]) -> str:
    """What a notification is of: an anomaly's id, or an incident's id at its severity (an
    incident notifies once per severity it reaches, docs/incidents.md)."""
    if alert.get("type") == "incident":
        return f"{alert['_id']}@{alert.get('severity')}"
    return str(alert["_id"])


def covering_keys(alert: Mapping[str, Any]) -> list[str]:
    """Keys whose notification makes a new one of `alert` redundant: its own and, for an
    incident, the same incident at any higher severity (no second alert when it calms down)."""
    if alert.get("type") != "incident":
        return [alert_key(alert)]
    rank = (
        SEVERITIES.index(str(alert.get("severity"))) if alert.get("severity") in SEVERITIES else 0
    )
    return [f"{alert['_id']}@{s}" for s in SEVERITIES[rank:]]


def summarize(anomaly: Mapping[str, Any]) -> Doc:
    """The part of an anomaly (or incident) a message needs (reasons as sentences, at most
    `MAX_REASONS`)."""
    reasons = [str(r.get("text", "")) for r in anomaly.get("reasons") or [] if r.get("text")]
    if anomaly.get("type") == "incident":
        return {
            "id": anomaly["_id"],
            "kind": "incident",
            "entity": anomaly.get("entity"),
            "entity_field": anomaly.get("entity_field"),
            "detector": ", ".join(anomaly.get("detectors") or []),
            "severity": anomaly.get("severity"),
            "score": float(anomaly.get("score") or 0.0),
            "window_start": anomaly.get("start"),
            "window_end": anomaly.get("end"),
            "n_anomalies": int(anomaly.get("n_anomalies") or 0),
            "reasons": reasons[:MAX_REASONS],
        }
    return {
        "id": anomaly["_id"],
        "entity": anomaly.get("entity"),
        "entity_field": anomaly.get("entity_field"),
        "detector": anomaly.get("detector"),
        "severity": anomaly.get("severity"),
        "score": float(anomaly.get("score") or 0.0),
        "confidence": anomaly.get("confidence"),
        "window_start": anomaly.get("window_start"),
        "window_end": anomaly.get("window_end"),
        "reasons": reasons[:MAX_REASONS],
    }


def new_notification(
    anomaly: Mapping[str, Any],
    *,
    channel: str,
    target: str,
    mode: str,
    due_at: datetime,
    now: datetime,
) -> Doc:
    """A fresh `pending` notification of `anomaly` on `channel`, due at `due_at`."""
    if mode not in MODES:
        raise ValueError(f"unknown notification mode {mode!r}")
    stamp = canonical_timestamp(now)
    return {
        "_id": notification_id(alert_key(anomaly), channel),
        "type": "notification",
        "anomaly_id": anomaly["_id"],
        "incident_id": anomaly["_id"] if anomaly.get("type") == "incident" else None,
        "channel": channel,
        "target": target,
        "entity": anomaly.get("entity"),
        "mode": mode,
        "status": "pending",
        "attempts": 0,
        "last_error": None,
        "next_attempt_at": canonical_timestamp(due_at),
        "created_at": stamp,
        "updated_at": stamp,
        "sent_at": None,
        "delivery_id": None,
        "digest_size": None,
        "anomaly": summarize(anomaly),
    }


def backoff_s(attempts: int, *, base_s: float, max_s: float) -> float:
    """Seconds to wait after the `attempts`-th failed attempt: base * 2^(attempts-1), capped."""
    return float(min(max_s, base_s * 2 ** max(0, attempts - 1)))


def leased(doc: Mapping[str, Any], *, now: datetime, lease_s: float) -> Doc:
    """`doc` claimed for sending: due again only after `lease_s` (if the sender dies)."""
    stamp = canonical_timestamp(now)
    return {
        **doc,
        "next_attempt_at": canonical_timestamp(now + timedelta(seconds=lease_s)),
        "updated_at": stamp,
    }


def deferred(doc: Mapping[str, Any], *, until: datetime, now: datetime) -> Doc:
    """`doc` postponed to `until` without counting an attempt (its rate window is closed)."""
    return {
        **doc,
        "next_attempt_at": canonical_timestamp(until),
        "updated_at": canonical_timestamp(now),
    }


def after_attempt(
    doc: Mapping[str, Any],
    *,
    now: datetime,
    error: str | None,
    delivery: str,
    size: int,
    max_attempts: int,
    base_s: float,
    max_s: float,
    permanent: bool = False,
) -> Doc:
    """`doc` after one delivery attempt: `sent`, or `pending` with backoff and `last_error`,
    or `failed` once `max_attempts` attempts have failed, or at once when the error is
    `permanent` (the message cannot be built: trying again cannot help)."""
    attempts = int(doc.get("attempts") or 0) + 1
    out = {**doc, "attempts": attempts, "updated_at": canonical_timestamp(now)}
    if error is None:
        out.update(
            status="sent",
            sent_at=canonical_timestamp(now),
            next_attempt_at=None,
            delivery_id=delivery,
            digest_size=size if size > 1 else None,
        )
        return out
    out["last_error"] = error[:MAX_ERROR_CHARS]
    if permanent or attempts >= max_attempts:
        out.update(status="failed", next_attempt_at=None)
    else:
        wait = backoff_s(attempts, base_s=base_s, max_s=max_s)
        out.update(
            status="pending", next_attempt_at=canonical_timestamp(now + timedelta(seconds=wait))
        )
    return out


def iter_due(couch: CouchClient, db: str, *, until: str, page_size: int) -> Iterator[Doc]:
    """Pending notifications whose `next_attempt_at` is before `until`, earliest due first."""
    yield from couch.iter_by_key(
        db,
        selector={"status": "pending"},
        key_field="next_attempt_at",
        end=until,
        sort_prefix=("status",),
        index=(BY_STATUS_DUE, BY_STATUS_DUE),
        page_size=page_size,
    )


def recent(couch: CouchClient, db: str, *, last: int, failed_only: bool = False) -> list[Doc]:
    """The `last` most recently created notifications (only `failed` ones if asked), newest
    first (one `_find`)."""
    selector: Doc = {"created_at": {"$gt": None}}
    sort: list[Doc] = [{"created_at": "desc"}]
    index = BY_CREATED
    if failed_only:
        selector = {"status": "failed", "created_at": {"$gt": None}}
        sort = [{"status": "desc"}, {"created_at": "desc"}]
        index = BY_STATUS_CREATED
    docs, _ = couch.find_page(
        db, {"selector": selector, "sort": sort, "use_index": [index, index], "limit": last}
    )
    return docs
