"""Notify on the in-memory twins (workers/notify/service.py): one notification per alert and
channel, ever; a redelivered notify task sends nothing twice; an outage leaves the notification
pending with its error, and the pending sweep sends it once the channel is back; the rate limit
sends one per stream and folds the rest into a digest; a channel down past the last attempt is
given up (`failed`) and `couchwatch notifications --failed` lists it."""

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


def _scored(couch: MemoryCouchClient, cfg: Settings, specs: list[tuple[str, float]]) -> list[str]:
    """High anomalies (entity, score), 15 minutes apart, as scoring writes them."""
    docs = []
    for i, (entity, score) in enumerate(specs):
        start = NOW - timedelta(hours=2) + timedelta(minutes=15 * i)
        doc = make_anomaly(
            entity=entity,
            entity_field="user_id",
            detector="login",
            window_start=start,
            window_end=start + timedelta(minutes=1),
            event_ids=[f"e{i}"],
            score=score,
            threshold=0.5,
            severity="high",
            confidence=1.0,
            reasons=[{"text": f"country UA never seen in 212 logins (case {i})"}],
            model={"v": 1},
            now=NOW,
        )
        docs.append(doc)
    assert not couch.bulk_docs(cfg.db_name("anomalies"), docs).failed
    return [d["_id"] for d in docs]


def test_the_rate_limit_sends_one_per_stream_and_folds_the_rest_into_one_digest() -> None:
    """Was tests/integration/test_notifications.py::test_rate_limit_folds_the_rest_into_one_digest
    (the Redis script behind the windows is tests/contract/couch.py's fakeredis check and the
    real-worker notify path test_notifications.py's other tests)."""
    cfg = Settings(_env_file=None, couchwatch_db_prefix="cw_")  # type: ignore[call-arg]
    couch = MemoryCouchClient()
    ensure_schema(couch, cfg)
    ids = _scored(couch, cfg, [("alice", 0.95), ("alice", 0.9), ("alice", 0.85), ("bob", 0.9)])
    email, hook = RecordingChannel("email"), RecordingChannel("webhook:r", "http://r")
    channels = [email, hook]
    windows = MemoryWindows(limit=cfg.couchwatch_notify_rate_limit, window_s=4.0)

    def notify(at: datetime) -> Any:
        return notify_anomalies(couch, cfg, ids, channels=channels, windows=windows, now=at)

    def sweep(at: datetime) -> Any:
        return notify_pending(couch, cfg, channels=channels, windows=windows, now=at)

    run = notify(NOW)
    assert (run.created, run.sent, run.deferred) == (8, 4, 4)
    assert sorted(m.subject.split(":")[1].strip() for m in email.sent) == [
        "user_id alice (score 0.95)",
        "user_id bob (score 0.90)",
    ]
    early = NOW + timedelta(seconds=1)
    assert sweep(early).sent == 0 and len(email.sent) == 2  # the window is still closed
    replay = notify(early)  # the notify task delivered again
    assert (replay.created, replay.sent, replay.duplicates) == (0, 0, 8) and len(email.sent) == 2

    late = sweep(NOW + timedelta(seconds=4.2))
    assert late.sent == 2  # one digest per channel
    assert "digest: 2 anomalies for user_id alice" in email.sent[-1].subject
    body = hook.sent[-1].payload
    assert body["type"] == "couchwatch.digest" and len(body["anomalies"]) == 2
    docs = list(couch.iter_all_docs(cfg.db_name("notifications")))
    assert all(d["status"] == "sent" for d in docs) and len(docs) == 8
    assert len({d["delivery_id"] for d in docs if d["mode"] == "digest"}) == 2
    assert len(email.sent) == 3 and len(hook.sent) == 3


def test_a_channel_down_gives_up_after_max_attempts_and_the_cli_lists_only_it_failed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Was tests/integration/test_notifications.py::test_gives_up_after_max_attempts_and_cli_
    lists_failed: the sweep retries with backoff until the last attempt, then `failed`."""
    from click.testing import CliRunner

    from couchwatch.cli import notify_cmd
    from couchwatch.cli.main import cli

    cfg = Settings(
        _env_file=None,
        couchwatch_db_prefix="cw_",
        couchwatch_notify_max_attempts=3,
        couchwatch_notify_backoff_s=1.0,
        couchwatch_notify_backoff_max_s=2.0,
    )  # type: ignore[call-arg]
    couch = MemoryCouchClient()
    ensure_schema(couch, cfg)
    ids = _scored(couch, cfg, [("dave", 0.99)])
    email, hook = RecordingChannel("email"), RecordingChannel("webhook:r", "http://r")
    email.down = True
    windows = MemoryWindows(limit=10, window_s=60)
    channels = [email, hook]
    notify_anomalies(couch, cfg, ids, channels=channels, windows=windows, now=NOW)
    at = NOW
    for _ in range(10):
        docs = {d["channel"]: d for d in couch.iter_all_docs(cfg.db_name("notifications"))}
        if docs["email"]["status"] == "failed":
            break
        at += timedelta(seconds=3)
        notify_pending(couch, cfg, channels=channels, windows=windows, now=at)
    else:
        raise AssertionError(f"the e-mail was never given up: {docs['email']}")
    assert docs["email"]["attempts"] == 3 and docs["email"]["last_error"]
    assert docs["email"]["next_attempt_at"] is None
    assert docs["webhook:r"]["status"] == "sent" and len(hook.sent) == 1

    monkeypatch.setattr(notify_cmd, "settings_or_fail", lambda: cfg)
    monkeypatch.setattr(notify_cmd, "couch_or_fail", lambda settings: couch)
    out = CliRunner().invoke(cli, ["notifications", "--failed"])
    everything = CliRunner().invoke(cli, ["notifications", "--last", "5"])
    assert out.exit_code == 0, out.output
    assert "failed" in out.output and "email" in out.output and "last error" in out.output
    assert "webhook" not in out.output and "webhook" in everything.output
