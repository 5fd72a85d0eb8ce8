"""Notifications end to end: real SMTP sink (aiosmtpd), real HTTP receiver, real workers, and
the rate windows on a real redis-server. The service's decisions (rate limit and digests, retries
until given up, the CLI's list of failed ones) are tests/unit/test_notify_service.py's."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.conftest import make_settings
from tests.support.fixtures import fleet_for, running_smtp, schema_couch
from tests.support.fleet import WorkerFleet
from tests.support.receivers import HttpReceiver, SmtpSink
from tests.support.services import CouchServer, RedisServer
from workers.couch.client import CouchClient
from workers.engine.demo_data import generate_demo
from workers.notify.ratelimit import MemoryWindows, RedisWindows
from workers.notify.signature import HEADER, verify_signature
from workers.settings import Settings
from workers.store.anomalies import make_anomaly

pytestmark = pytest.mark.integration
SECRET = "whsec-test-9b1d"
SMTP_PASSWORD = "smtp-pw-test-4c2e"
WINDOW_S = 4.0


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    with running_smtp() as sink:
        yield sink


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    http = HttpReceiver()
    http.start()
    yield http
    http.stop()


@pytest.fixture
def nsettings(
    couchdb: CouchServer, redis_service: RedisServer, smtp: SmtpSink, receiver: HttpReceiver
) -> Settings:
    return make_settings(
        couchdb,
        redis_service.url,
        couchwatch_smtp_host="127.0.0.1",
        couchwatch_smtp_port=smtp.port,
        couchwatch_smtp_starttls=False,
        couchwatch_smtp_password=SMTP_PASSWORD,
        couchwatch_smtp_from="couchwatch@test.local",
        couchwatch_smtp_to="ops@test.local",
        couchwatch_webhook_urls=receiver.url,
        couchwatch_webhook_secret=SECRET,
        couchwatch_notify_rate_window_s=WINDOW_S,
        couchwatch_notify_backoff_s=1.0,
        couchwatch_notify_backoff_max_s=2.0,
        couchwatch_notify_max_attempts=3,
        couchwatch_smtp_timeout_s=5,
        couchwatch_webhook_timeout_s=5,
    )


@pytest.fixture
def ncouch(nsettings: Settings) -> Iterator[CouchClient]:
    with schema_couch(nsettings) as client:
        yield client


@pytest.fixture
def fleet(nsettings: Settings, ncouch: CouchClient, tmp_path: Path) -> Iterator[WorkerFleet]:
    with fleet_for(nsettings, tmp_path) as running:
        yield running


def _run(
    fleet: WorkerFleet, couch: CouchClient, task: str, *args: Any, timeout_s: float = 120
) -> dict[str, Any]:
    task_id = fleet.app().send_task(task, args=list(args)).id
    db = fleet.settings.db_name("runs")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        doc = couch.get(db, f"run-{task_id}")
        if doc and doc["outcome"] not in ("running", "retrying"):
            return doc
        time.sleep(0.2)
    raise AssertionError(f"{task} {task_id} did not finish")


def _notifications(couch: CouchClient, settings: Settings) -> list[dict[str, Any]]:
    return list(couch.iter_all_docs(settings.db_name("notifications")))


def _anomalies(couch: CouchClient, settings: Settings, specs: list[tuple[str, float]]) -> list[str]:
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    docs = [
        make_anomaly(
            entity=entity,
            entity_field="user_id",
            detector="login",
            window_start=base + timedelta(minutes=15 * i),
            window_end=base + timedelta(minutes=15 * i + 1),
            event_ids=[f"e{i}"],
            score=score,
            threshold=0.5,
            severity="high",
            confidence=1.0,
            reasons=[{"text": f"country UA never seen in 212 logins (case {i})"}],
            model={"v": 1},
        )
        for i, (entity, score) in enumerate(specs)
    ]
    assert not couch.bulk_docs(settings.db_name("anomalies"), docs).failed
    return [d["_id"] for d in docs]


def _assert_no_secrets(couch: CouchClient, settings: Settings, fleet: WorkerFleet) -> None:
    stored = json.dumps(list(couch.iter_all_docs(settings.db_name("runs"))))
    stored += json.dumps(_notifications(couch, settings))
    logs = "".join(p.read_text(errors="replace") for p in fleet.logs.glob("*.log"))
    for secret in (SECRET, SMTP_PASSWORD, "secret-token"):
        assert secret not in stored and secret not in logs, secret


def test_scoring_notifies_with_content_and_signature_and_rescore_sends_nothing_new(
    nsettings: Settings,
    ncouch: CouchClient,
    fleet: WorkerFleet,
    smtp: SmtpSink,
    receiver: HttpReceiver,
) -> None:
    days = 12
    start = (datetime.now(UTC) - timedelta(days=days + 1)).replace(hour=0, minute=0, second=0)
    events = sorted(
        generate_demo(users=6, days=days, seed=11, start=start).events, key=lambda e: e["timestamp"]
    )
    cut = int(len(events) * 0.7)
    assert not ncouch.bulk_docs(nsettings.events_db, events[:cut]).failed
    _run(fleet, ncouch, "couchwatch.plan_scoring")
    fleet.app().send_task("couchwatch.plan_training", kwargs={"force": True})
    deadline = time.monotonic() + 240
    while not any(
        d["task"] == "couchwatch.train_entities" and d["outcome"] == "succeeded"
        for d in ncouch.iter_all_docs(nsettings.db_name("runs"))
    ):
        assert time.monotonic() < deadline, "training did not finish"
        time.sleep(0.5)
    for s in range(cut, len(events), 1000):
        assert not ncouch.bulk_docs(nsettings.events_db, events[s : s + 1000]).failed

    users = sorted({e["user_id"] for e in events})
    score_run = _run(fleet, ncouch, "couchwatch.score_entities", [[u, None, None] for u in users])
    high = [
        a for a in ncouch.iter_all_docs(nsettings.db_name("anomalies")) if a["severity"] == "high"
    ]
    assert high, "the scenario's incidents should give high anomalies"
    entity = high[0]["entity"]
    incidents = [
        i
        for i in ncouch.iter_all_docs(nsettings.db_name("incidents"))
        if i["severity"] == "high" and not i["superseded_by"]
    ]
    assert 0 < len(incidents) <= len(high)
    print(f"\n{len(high)} high anomalies in {len(incidents)} high incidents")
    deadline = time.monotonic() + 60
    while len(smtp.messages) < 1 or len(receiver.requests) < 1:
        assert time.monotonic() < deadline, "no notification arrived"
        time.sleep(0.1)
    time.sleep(1.0)
    docs = _notifications(ncouch, nsettings)
    sent = [d for d in docs if d["status"] == "sent"]
    assert {d["channel"].split(":")[0] for d in sent} == {"email", "webhook"}
    assert len(docs) == 2 * len(incidents)  # one per incident and channel, not per anomaly
    assert {d["incident_id"] for d in docs} == {i["_id"] for i in incidents}
    latency = max(datetime.fromisoformat(d["sent_at"]) for d in sent) - datetime.fromisoformat(
        score_run["finished_at"]
    )
    print(f"\nnotify latency after the scoring run finished: {latency.total_seconds():.2f}s")

    mail = smtp.messages[0]
    text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = mail.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "user_id " in text and "Severity: high" in text and "Why:" in text
    assert "couchwatch review incident:" in text and "confirm|dismiss" in text and "<ul>" in html
    assert " anomal" in mail["Subject"] and "Incident:  incident:" in text
    hook = receiver.requests[0]
    assert verify_signature(SECRET, hook.headers[HEADER], hook.body, now=time.time())
    assert not verify_signature(SECRET, hook.headers[HEADER], hook.body, now=time.time() + 3600)
    payload = json.loads(hook.body)
    assert payload["text"] and payload["entity"] in {a["entity"] for a in high}
    assert payload["incidents"][0]["reasons"] and payload["incidents"][0]["n_anomalies"] >= 1

    before = (len(smtp.messages), len(receiver.requests), len(docs))
    again = _run(fleet, ncouch, "couchwatch.rescore", entity)
    assert again["outcome"] == "succeeded"
    deadline = time.monotonic() + 30
    notify_runs: list[dict[str, Any]] = []
    while len(notify_runs) < 2 and time.monotonic() < deadline:
        notify_runs = [
            d
            for d in ncouch.iter_all_docs(nsettings.db_name("runs"))
            if d["task"] == "couchwatch.notify" and d["outcome"] == "succeeded"
        ]
        time.sleep(0.2)
    assert len(notify_runs) >= 2 and max(r["details"]["duplicates"] for r in notify_runs) > 0
    _run(fleet, ncouch, "couchwatch.notify_pending")
    time.sleep(WINDOW_S + 0.5)
    _run(fleet, ncouch, "couchwatch.notify_pending")  # digests of the first pass, if any
    after_digests = len(smtp.messages), len(receiver.requests)
    assert len(_notifications(ncouch, nsettings)) == before[2]  # the rescore created nothing
    _run(fleet, ncouch, "couchwatch.rescore", entity)
    time.sleep(2)
    assert (len(smtp.messages), len(receiver.requests)) == after_digests
    _assert_no_secrets(ncouch, nsettings, fleet)


def test_outage_keeps_notifications_pending_then_retries(
    nsettings: Settings,
    ncouch: CouchClient,
    fleet: WorkerFleet,
    smtp: SmtpSink,
    receiver: HttpReceiver,
) -> None:
    smtp.stop()
    receiver.stop()
    ids = _anomalies(ncouch, nsettings, [("carol", 0.97)])
    run = _run(fleet, ncouch, "couchwatch.notify", ids)
    assert run["outcome"] == "succeeded" and run["details"]["failed_attempts"] == 2
    docs = _notifications(ncouch, nsettings)
    assert len(docs) == 2 and all(d["status"] == "pending" and d["attempts"] == 1 for d in docs)
    assert all(d["last_error"] and "Connection" in d["last_error"] for d in docs), docs
    assert all("secret-token" not in d["last_error"] for d in docs)

    smtp.start()
    receiver.start()
    t_up = time.monotonic()
    deadline = time.monotonic() + 30
    while any(d["status"] != "sent" for d in _notifications(ncouch, nsettings)):
        assert time.monotonic() < deadline, _notifications(ncouch, nsettings)
        _run(fleet, ncouch, "couchwatch.notify_pending")  # what beat does every minute
        time.sleep(0.3)
    print(f"\nrecovered {time.monotonic() - t_up:.2f}s after the receivers came back")
    assert len(smtp.messages) == 1 and len(receiver.requests) == 1
    assert all(d["attempts"] == 2 for d in _notifications(ncouch, nsettings))
    _assert_no_secrets(ncouch, nsettings, fleet)


def test_redis_windows_hold_the_limit_across_clients_and_reopen(
    redis_service: RedisServer,
) -> None:
    """The rate windows' script on a real redis-server, shared by two clients (two workers),
    and the in-memory twin the unit tests use granting the same. What the service does with
    the grants (one now, the rest in a digest) is tests/unit/test_notify_service.py's."""
    key = f"test-{uuid.uuid4().hex[:8]}"
    window_s = 1.0
    real = [
        RedisWindows(redis.Redis.from_url(redis_service.url), limit=2, window_s=window_s)
        for _ in range(2)
    ]
    twin = MemoryWindows(limit=2, window_s=window_s)
    start = datetime.now(UTC)
    first = real[0].claim(key, 3, start)
    assert first.granted == 2
    assert start < first.reopens_at <= start + timedelta(seconds=window_s)
    other = real[1].claim(key, 1, start)
    assert other.granted == 0 and other.reopens_at <= first.reopens_at
    time.sleep(window_s + 0.2)
    later = datetime.now(UTC)
    assert real[1].claim(key, 1, later).granted == 1
    grants = [twin.claim(key, 3, start).granted, twin.claim(key, 1, start).granted]
    grants.append(twin.claim(key, 1, start + timedelta(seconds=window_s + 0.2)).granted)
    assert grants == [first.granted, other.granted, 1]
