"""Notification decisions: severity threshold, ranking, rate limit and digests, outcomes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from workers.notify.decide import (
    Window,
    digest_groups,
    group_by_stream,
    notifiable,
    plan_stream,
    reaches,
    stream_key,
)
from workers.notify.ratelimit import MemoryWindows
from workers.store.notifications import (
    after_attempt,
    backoff_s,
    delivery_id,
    new_notification,
    notification_id,
)

pytestmark = pytest.mark.unit
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def anomaly(
    i: int,
    *,
    entity: str = "alice",
    severity: str = "high",
    score: float = 0.9,
    review: str = "open",
) -> dict[str, Any]:
    return {
        "_id": f"anomaly:{i}",
        "type": "anomaly",
        "entity": entity,
        "entity_field": "user_id",
        "severity": severity,
        "score": score,
        "detector": "window",
        "window_start": f"2024-05-01T{i % 24:02d}:00:00.000Z",
        "window_end": f"2024-05-01T{i % 24:02d}:15:00.000Z",
        "reasons": [{"text": f"reason {i}"}],
        "review": {"status": review},
    }


def test_severity_threshold() -> None:
    assert reaches("high", "high") and reaches("high", "medium") and not reaches("medium", "high")
    assert not reaches(None, "low") and not reaches("weird", "low")


def test_notifiable_filters_and_ranks() -> None:
    docs = [
        anomaly(1, score=0.7),
        anomaly(2, severity="medium"),
        anomaly(3, score=0.99),
        anomaly(4, review="dismissed"),
    ]
    docs.append({"_id": "x", "type": "run", "severity": "high"})
    assert [a["_id"] for a in notifiable(docs, "high")] == ["anomaly:3", "anomaly:1"]
    assert len(notifiable(docs, "medium")) == 3


def test_one_now_rest_in_digest_per_stream() -> None:
    windows = MemoryWindows(limit=1, window_s=600)
    chosen = notifiable(
        [anomaly(i, score=0.9 - i / 100) for i in range(4)] + [anomaly(9, entity="bob")], "high"
    )
    plans = []
    for key, (channel, items) in group_by_stream(chosen, ["email"]).items():
        plans += plan_stream(items, channel, windows.claim(key, len(items), NOW), NOW)
    modes = {(p.anomaly["entity"], p.anomaly["_id"]): (p.mode, p.due_at) for p in plans}
    assert modes[("alice", "anomaly:0")] == ("immediate", NOW)  # highest score goes now
    reopen = NOW + timedelta(seconds=600)
    assert [modes[("alice", f"anomaly:{i}")] for i in (1, 2, 3)] == [("digest", reopen)] * 3
    assert modes[("bob", "anomaly:9")] == ("immediate", NOW)  # other entity, own window


def test_window_closed_until_it_reopens() -> None:
    windows = MemoryWindows(limit=1, window_s=600)
    key = stream_key("email", "alice")
    assert windows.claim(key, 1, NOW).granted == 1
    later = windows.claim(key, 2, NOW + timedelta(seconds=300))
    assert later == Window(0, NOW + timedelta(seconds=600))
    assert windows.claim(key, 1, NOW + timedelta(seconds=600)).granted == 1
    assert MemoryWindows(limit=3, window_s=60).claim(key, 5, NOW).granted == 3


def test_streams_are_per_channel() -> None:
    assert stream_key("email", "a") != stream_key("webhook:1", "a")
    groups = group_by_stream([anomaly(1)], ["email", "webhook:1"])
    assert sorted(ch for ch, _ in groups.values()) == ["email", "webhook:1"]


def test_ids_are_deterministic_per_anomaly_and_channel() -> None:
    assert notification_id("anomaly:1", "email") == notification_id("anomaly:1", "email")
    assert notification_id("anomaly:1", "email") != notification_id("anomaly:1", "webhook:x")
    assert delivery_id(["n1"]) == "n1"
    assert delivery_id(["n1", "n2"]) == delivery_id(["n2", "n1"])
    assert delivery_id(["n1", "n2"]).startswith("digest:")


def test_digest_groups() -> None:
    docs = [
        new_notification(
            anomaly(i),
            channel="email",
            target="smtp://h",
            now=NOW,
            mode="digest" if i else "immediate",
            due_at=NOW,
        )
        for i in range(3)
    ]
    docs.append(
        new_notification(
            anomaly(7, entity="bob"),
            channel="email",
            target="smtp://h",
            mode="digest",
            due_at=NOW,
            now=NOW,
        )
    )
    sizes = sorted(len(g) for g in digest_groups(docs))
    assert sizes == [1, 1, 2]


def test_backoff_doubles_and_caps() -> None:
    assert [backoff_s(n, base_s=60, max_s=600) for n in (1, 2, 3, 4, 5)] == [60, 120, 240, 480, 600]


def test_outcomes_pending_then_failed_then_sent() -> None:
    doc = new_notification(
        anomaly(1), channel="email", target="smtp://h", mode="immediate", due_at=NOW, now=NOW
    )
    assert (doc["status"], doc["attempts"], doc["last_error"]) == ("pending", 0, None)
    kw: dict[str, Any] = {
        "delivery": doc["_id"],
        "size": 1,
        "max_attempts": 3,
        "base_s": 10,
        "max_s": 100,
    }
    first = after_attempt(doc, now=NOW, error="smtp://h: ConnectionRefusedError", **kw)
    assert first["status"] == "pending" and first["attempts"] == 1
    assert (
        first["last_error"].startswith("smtp://h")
        and first["next_attempt_at"] > doc["next_attempt_at"]
    )
    third = after_attempt(after_attempt(first, now=NOW, error="x", **kw), now=NOW, error="y", **kw)
    assert (
        third["status"] == "failed" and third["attempts"] == 3 and third["next_attempt_at"] is None
    )
    sent = after_attempt(first, now=NOW, error=None, **kw)
    assert sent["status"] == "sent" and sent["sent_at"] and sent["attempts"] == 2
