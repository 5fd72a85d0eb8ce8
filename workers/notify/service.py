"""The two plain functions behind the notify tasks.

`notify_anomalies(ids)`: create the notification documents of newly written anomalies, one per
alert and channel, ever (an existing `_id` means already handled, so redeliveries and rescores
send nothing new), then send the immediate ones. An alert is the anomaly's incident at its
current severity (so an incident of 20 anomalies notifies once, and again only when it escalates;
docs/incidents.md), or the anomaly itself when it has no incident. `notify_pending()`: send
whatever is due: digests whose rate window reopened, retries after backoff, and notifications
whose sender died.

Sending is at-least-once around a crash (a worker killed between sending and recording the
outcome sends that one message again after the lease); it is never zero times: a document stays
`pending` with `last_error` until it is sent or runs out of attempts (`failed`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from itertools import islice
from typing import Any

from workers.couch.client import CouchClient
from workers.events import canonical_timestamp
from workers.notify.channels import Channel, channels_from_settings
from workers.notify.decide import (
    digest_groups,
    group_by_stream,
    notifiable,
    plan_stream,
    stream_key,
)
from workers.notify.errors import DeliveryError, MessageError, NotifyError, describe
from workers.notify.message import render
from workers.notify.ratelimit import RedisWindows, Windows
from workers.settings import Settings
from workers.store import notifications as documents
from workers.store.notifications import (
    Doc,
    after_attempt,
    covering_keys,
    deferred,
    delivery_id,
    leased,
    new_notification,
    notification_id,
)
from workers.text import printable

log = logging.getLogger(__name__)
LEASE_S = 300.0  # a sender that died mid-send hands its notifications back after this long
PENDING_BATCH = 500  # notifications handled per notify_pending run


@dataclass
class NotifyResult:
    """Counts of one notify run: documents created, already handled, messages sent, failed
    attempts, notifications deferred by the rate limit, notifications given up (`failed`)."""

    created: int = 0
    duplicates: int = 0
    sent: int = 0
    failed_attempts: int = 0
    deferred: int = 0
    gave_up: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def notify_anomalies(
    couch: CouchClient,
    settings: Settings,
    anomaly_ids: Sequence[str],
    *,
    channels: Sequence[Channel],
    windows: Windows,
    now: datetime,
) -> NotifyResult:
    """Create notifications for the anomalies among `anomaly_ids` that reach the notification
    severity and have none yet; send the ones the rate limit lets through now."""
    result = NotifyResult()
    if not channels or not anomaly_ids:
        return result
    db = settings.db_name("notifications")
    found = couch.get_many(settings.db_name("anomalies"), list(dict.fromkeys(anomaly_ids)))
    alerts = incident_alerts(couch, settings, list(found.values()))
    chosen = notifiable(alerts, settings.couchwatch_notify_severity)
    by_name = {c.name: c for c in channels}
    existing = couch.get_many(
        db, [notification_id(k, c) for a in chosen for k in covering_keys(a) for c in by_name]
    )
    docs: list[Doc] = []
    for key, (channel, items) in group_by_stream(chosen, list(by_name)).items():
        fresh = [
            a
            for a in items
            if not any(notification_id(k, channel) in existing for k in covering_keys(a))
        ]
        result.duplicates += len(items) - len(fresh)
        if not fresh:
            continue
        for plan in plan_stream(fresh, channel, windows.claim(key, len(fresh), now), now):
            due = now + timedelta(seconds=LEASE_S) if plan.mode == "immediate" else plan.due_at
            target = by_name[channel].target
            docs.append(
                new_notification(
                    plan.anomaly,
                    channel=channel,
                    mode=plan.mode,
                    target=target,
                    due_at=due,
                    now=now,
                )
            )
    written = _write(couch, db, docs)  # a conflict: another task created it first (theirs)
    result.created = len(written)
    result.deferred = sum(1 for d in written if d["mode"] == "digest")
    mine = [d for d in written if d["mode"] == "immediate"]
    _deliver(couch, settings, mine, channels=by_name, windows=windows, now=now, result=result)
    return result


def incident_alerts(
    couch: CouchClient, settings: Settings, anomalies: Sequence[Mapping[str, Any]]
) -> list[Doc]:
    """What to notify for `anomalies`: the (current) incident of each one that has an
    `incident_id`, once each; an anomaly without a stored incident stands for itself."""
    db = settings.db_name("incidents")
    wanted = {str(a["incident_id"]) for a in anomalies if a.get("incident_id")}
    incidents = couch.get_many(db, sorted(wanted)) if wanted else {}
    successors = {str(d["superseded_by"]) for d in incidents.values() if d.get("superseded_by")}
    incidents.update(couch.get_many(db, sorted(successors - set(incidents))) if successors else {})

    def current(incident_id: str) -> Doc | None:
        doc, seen = incidents.get(incident_id), {incident_id}
        while doc is not None and doc.get("superseded_by") and doc["superseded_by"] not in seen:
            seen.add(str(doc["superseded_by"]))
            doc = incidents.get(str(doc["superseded_by"]))
        ok = doc is not None and doc.get("type") == "incident" and not doc.get("superseded_by")
        return doc if ok else None

    alerts: dict[str, Doc] = {}
    for anomaly in anomalies:
        incident = current(str(anomaly["incident_id"])) if anomaly.get("incident_id") else None
        chosen = incident if incident is not None else dict(anomaly)
        alerts.setdefault(chosen["_id"], chosen)
    return list(alerts.values())


def notify_pending(
    couch: CouchClient,
    settings: Settings,
    *,
    channels: Sequence[Channel],
    windows: Windows,
    now: datetime,
    limit: int = PENDING_BATCH,
) -> NotifyResult:
    """Send up to `limit` due pending notifications (digests, retries, abandoned sends)."""
    result = NotifyResult()
    db = settings.db_name("notifications")
    due = list(
        islice(
            documents.iter_due(
                couch,
                db,
                until=canonical_timestamp(now + timedelta(milliseconds=1)),
                page_size=min(limit, 500),
            ),
            limit,
        )
    )
    mine = _write(couch, db, [leased(d, now=now, lease_s=LEASE_S) for d in due])
    by_name = {c.name: c for c in channels}
    _deliver(couch, settings, mine, channels=by_name, windows=windows, now=now, result=result)
    return result


def _deliver(
    couch: CouchClient,
    settings: Settings,
    docs: Iterable[Doc],
    *,
    channels: Mapping[str, Channel],
    windows: Windows,
    now: datetime,
    result: NotifyResult,
) -> None:
    """Send each group (one immediate, or one digest) and record its outcome right away."""
    db = settings.db_name("notifications")
    for group in digest_groups(docs):
        first = group[0]
        channel = channels.get(first["channel"])
        if first["mode"] == "digest" and not any(d.get("attempts") for d in group):
            window = windows.claim(stream_key(first["channel"], first.get("entity")), 1, now)
            if not window.granted:  # the window closed again (a new alert took it): wait
                _write(couch, db, [deferred(d, until=window.reopens_at, now=now) for d in group])
                result.deferred += len(group)
                continue
        ids = [d["_id"] for d in group]
        error: str | None
        if channel is None:
            error, permanent = f"channel {first['channel']} is no longer configured", False
        else:
            error, permanent = _attempt(channel, group, delivery_id(ids), settings)
        outcomes = [
            after_attempt(
                d,
                now=now,
                error=error,
                delivery=delivery_id(ids),
                size=len(group),
                max_attempts=settings.couchwatch_notify_max_attempts,
                base_s=settings.couchwatch_notify_backoff_s,
                max_s=settings.couchwatch_notify_backoff_max_s,
                permanent=permanent,
            )
            for d in group
        ]
        if error is None:
            result.sent += 1
        else:
            result.failed_attempts += 1
            result.gave_up += sum(1 for d in outcomes if d["status"] == "failed")
            log.warning(
                "notification %s not delivered (attempt %d): %s",
                delivery_id(ids),
                outcomes[0]["attempts"],
                error,
            )
        _write(couch, db, outcomes)


def _attempt(
    channel: Channel, group: Sequence[Mapping[str, Any]], delivery: str, settings: Settings
) -> tuple[str | None, bool]:
    """Build and send one message; return (error or None, whether the error is permanent).

    Whatever goes wrong stays with this notification (recorded by the caller: attempts counted,
    `last_error` stored) and never stops the others of the run: a message that cannot be built
    (bad data in the stored summary, a header the e-mail library refuses) fails at once; a
    delivery failure, or an unexpected error of the channel, is retried with backoff.
    """
    try:
        message = render(
            delivery, [d["anomaly"] for d in group], hint=settings.couchwatch_notify_review_hint
        )
    except Exception as exc:  # the stored summary itself is unusable
        return f"message could not be built: {printable(describe(exc))}", True
    try:
        channel.send(message)
    except MessageError as exc:
        return printable(exc), True
    except DeliveryError as exc:
        return printable(exc), False
    except Exception as exc:  # a channel bug: named by class only (its text may hold a URL)
        return f"{channel.target}: unexpected {type(exc).__name__} while sending", False
    return None, False


def _write(couch: CouchClient, db: str, docs: Sequence[Doc]) -> list[Doc]:
    """Write `docs` (creates, or updates carrying `_rev`); return those written, with new revs.

    Conflicts mean another worker created or claimed the document first: it is theirs.
    """
    if not docs:
        return []
    reply = couch.bulk_docs(db, docs)
    if reply.failed:
        first = reply.failed[0]
        raise NotifyError(f"{len(reply.failed)} notifications refused by CouchDB: {first.reason}")
    revs = {row.id: row.rev for row in reply.written}
    return [{**d, "_rev": revs[d["_id"]]} for d in docs if d["_id"] in revs]


def windows_for(settings: Settings, client: Any) -> RedisWindows:
    """The Redis rate windows configured by the settings."""
    return RedisWindows(
        client,
        limit=settings.couchwatch_notify_rate_limit,
        window_s=settings.couchwatch_notify_rate_window_s,
    )


def recent_notifications(
    couch: CouchClient, settings: Settings, *, last: int, failed_only: bool = False
) -> list[Doc]:
    """The `last` most recently created notifications (only `failed` ones if asked), newest
    first."""
    return documents.recent(
        couch, settings.db_name("notifications"), last=last, failed_only=failed_only
    )


__all__ = ["NotifyResult", "channels_from_settings", "notify_anomalies", "notify_pending"]
