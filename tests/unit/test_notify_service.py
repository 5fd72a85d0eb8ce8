"""Notify on the in-memory twins (workers/notify/service.py): one notification per alert and
channel, ever; a redelivered notify task sends nothing twice; an outage leaves the notification
pending with its error, and the pending sweep sends it once the channel is back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from workers.couch.memory import MemoryCouchClient
from workers.couch.schema import ensure_schema
from workers.notify.channels import RecordingChannel
from workers.notify.ratelimit import MemoryWindows
from workers.notify.service import notify_anomalies, notify_pending, recent_notifications
from workers.settings import Settings
from workers.store.anomalies import make_anomaly

pytestmark = pytest.mark.unit
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _setup() -> tuple[MemoryCouchClient, Settings, list[str]]:
    cfg = Settings(_env_file=None, couchwatch_db_prefix="cw_")  # type: ignore[call-arg]
    couch = MemoryCouchClient()
    ensure_schema(couch, cfg)
    docs = [_anomaly("alice", 0, "high"), _anomaly("bob", 1, "high"), _anomaly("carol", 2, "low")]
    assert not couch.bulk_docs(cfg.db_name("anomalies"), docs).failed
    return couch, cfg, [d["_id"] for d in docs]


def _anomaly(entity: str, hour: int, severity: str) -> dict[str, Any]:
    start = NOW - timedelta(hours=3 - hour)
    return make_anomaly(
        entity=entity,
        entity_field="user_id",
        detector="combined",
        window_start=start,
        window_end=start + timedelta(minutes=15),
        event_ids=[f"{entity}-1"],
        score=0.999,
        threshold=0.99,
        severity=severity,
        confidence=1.0,
        reasons=[{"text": f"{entity} logged in from a new country"}],
        model={"id": "m", "version": 1},
        now=NOW,
    )


def _notify(couch: Any, cfg: Settings, ids: list[str], channel: RecordingChannel, **kw: Any) -> Any:
    windows = kw.pop("windows", MemoryWindows(limit=10, window_s=60))
    return notify_anomalies(couch, cfg, ids, channels=[channel], windows=windows, now=NOW, **kw)


def test_high_anomalies_notify_once_and_a_redelivery_sends_nothing() -> None:
    couch, cfg, ids = _setup()
    channel = RecordingChannel()
    first = _notify(couch, cfg, ids, channel)
    assert (first.created, first.sent) == (2, 2)  # carol's is low: below the threshold
    assert sorted(m.payload["entity"] for m in channel.sent) == ["alice", "bob"]
    again = _notify(couch, cfg, ids, channel)  # the notify task delivered twice
    assert (again.created, again.sent) == (0, 0) and len(channel.sent) == 2
    stored = recent_notifications(couch, cfg, last=10)
    assert sorted(d["entity"] for d in stored) == ["alice", "bob"]
    assert all(d["status"] == "sent" and d["attempts"] == 1 for d in stored)


def test_an_outage_leaves_notifications_pending_and_the_sweep_sends_them_once() -> None:
    couch, cfg, ids = _setup()
    channel = RecordingChannel()
    channel.down = True
    result = _notify(couch, cfg, ids[:1], channel)
    assert result.created == 1 and result.sent == 0 and result.failed_attempts == 1
    pending = recent_notifications(couch, cfg, last=10)
    assert [d["status"] for d in pending] == ["pending"]
    assert "connection refused" in pending[0]["last_error"]
    channel.down = False
    later = NOW + timedelta(hours=1)
    windows = MemoryWindows(limit=10, window_s=60)
    swept = notify_pending(couch, cfg, channels=[channel], windows=windows, now=later)
    assert swept.sent == 1 and [m.payload["entity"] for m in channel.sent] == ["alice"]
    assert notify_pending(couch, cfg, channels=[channel], windows=windows, now=later).sent == 0
    done = recent_notifications(couch, cfg, last=10)
    assert [d["status"] for d in done] == ["sent"] and done[0]["attempts"] == 2
    assert recent_notifications(couch, cfg, last=10, failed_only=True) == []
