"""Poison input on real processes (issue 13, items 2-4; results in docs/reliability.md).

(2) Entity ids with CR/LF, NEL, U+2028/U+2029 or ESC are quarantined by `couchwatch ingest`, by
    `POST /v1/events` on a real uvicorn process and by the planner on a real worker (documents
    written straight to CouchDB); `plan_training` skips an entity registered before the rule.
    One notification that cannot be built is recorded `failed` with its reason and never stops
    the others (real worker, aiosmtpd sink, HTTP receiver); CLI lines escape control
    characters; Slack text escapes `&`, `<`, `>`.
(3) `1` followed by 400 zeros in `bytes_sent`, `status_code`, `timestamp` (and an extra field)
    through the `couchwatch ingest` subprocess (300 lines before, 300 after) and the API.
(4) Event-id squatting through the API: a different event pre-posted under the content-hash id
    the real one will get; the real one must still be stored, and say so.

Real PouchDB Server, redis-server, `celery worker`, the CLI and the API as subprocesses.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from couchwatch.stack.processes import free_port
from tests.conftest import make_settings, settings_env
from tests.support.fixtures import running_smtp, schema_couch
from tests.support.fleet import WorkerFleet, worker_fleet
from tests.support.receivers import HttpReceiver, SmtpSink
from tests.support.services import ROOT, CouchServer, RedisServer, terminate
from tests.support.waiting import eventually, wait_run
from workers.couch.client import CouchClient
from workers.events import validate_event
from workers.settings import Settings
from workers.store.anomalies import make_anomaly
from workers.store.keys import create_key
from workers.store.notifications import new_notification
from workers.store.registry import registry_id

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)
HUGE = "1" + "0" * 400
BAD_ENTITIES = ["mallory\r\nBcc: all@example.com", "a\x85b", "a\u2028b", "a\u2029b", "\x1b[31mred"]
RAW_CONTROLS = ("\r", "\x85", "\u2028", "\u2029", "\x1b")
EVIL = "mallory\r\nBcc: all@example.com <!channel> & <https://evil.test|click>\u2028"


def _good(n: int, tag: str, entity: str = "alice") -> list[dict[str, Any]]:
    base = NOW.replace(microsecond=0) - timedelta(hours=6)
    return [
        {
            "user_id": entity,
            "timestamp": (base + timedelta(seconds=7 * i)).isoformat(),
            "type": "login",
            "country": "DE",
            "bytes_sent": i,
            "endpoint": f"/{tag}/{i}",
        }
        for i in range(n)
    ]


def _cli(
    cfg: Settings, *args: str, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "couchwatch.cli.main", *args],
        input=stdin,
        env={**os.environ, **settings_env(cfg)},
        cwd=ROOT,
        capture_output=True,
        timeout=300,
        check=False,
    )


def _docs(couch: CouchClient, db: str) -> list[dict[str, Any]]:
    return list(couch.iter_all_docs(db))


def _assert_escaped(output: bytes) -> str:
    text = output.decode()
    assert not any(c in text for c in RAW_CONTROLS), [c for c in RAW_CONTROLS if c in text]
    return text


@contextmanager
def api_server(cfg: Settings, logs: Path) -> Iterator[str]:
    """`couchwatch api` in a real uvicorn process; yields its base URL."""
    port = free_port()
    log = (logs / "api.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "couchwatch.cli.main", "api", "--port", str(port)],
        env={**os.environ, **settings_env(cfg)},
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert proc.poll() is None, (logs / "api.log").read_text()
        try:
            return httpx.get(f"{url}/openapi.json", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        eventually(up, "uvicorn to answer", timeout_s=60)
        yield url
    finally:
        terminate(proc, grace_s=20)
        log.close()


@pytest.fixture
def api(settings: Settings, couch: CouchClient, tmp_path: Path) -> Iterator[tuple[str, Any]]:
    with schema_couch(settings) as client, api_server(settings, tmp_path) as url:
        db = settings.db_name("apikeys")
        keys = {
            n: {"X-API-Key": create_key(client, db, ["ingest"], name=n)}
            for n in ("producer", "squatter")
        }
        yield url, keys


def _post(url: str, key: dict[str, str], events: list[Any]) -> httpx.Response:
    return httpx.post(f"{url}/v1/events", json={"events": events}, headers=key, timeout=60)


# --- item 2: control characters in entity ids ----------------------------------------------


def test_control_character_entity_ids_are_quarantined_on_every_write_path(
    settings: Settings, api: tuple[str, Any], tmp_path: Path
) -> None:
    cfg, (url, keys) = settings, api
    couch = CouchClient.from_settings(cfg)
    # (a) `couchwatch ingest`: 300 good lines with the 5 bad ids in between
    good = _good(300, "cli")
    bad = [{**good[0], "user_id": e, "endpoint": f"/bad/{i}"} for i, e in enumerate(BAD_ENTITIES)]
    lines = [*good[:150], *bad, *good[150:]]
    path = tmp_path / "ids.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in lines))
    done = _cli(cfg, "ingest", "--quiet", str(path))
    assert done.returncode == 0 and b"Traceback" not in done.stderr, done.stderr
    out = _assert_escaped(done.stdout)
    assert out.startswith("accepted 300, duplicates 0, rejected 5"), out
    assert "contains the control character U+000D" in out and "U+2028" in out
    # (b) `POST /v1/events`: 20 good, the 5 bad in between
    api_good = _good(20, "api", entity="bob")
    reply = _post(url, keys["producer"], [*api_good[:10], *bad, *api_good[10:]])
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert (body["stored"], body["quarantined"]) == (20, 5)
    assert all("control character" in i["reason"] for i in body["items"][10:15])
    # (c) the planner on a real worker: the same 5 written straight to CouchDB, and an entity
    # registered before the rule existed
    direct = [
        {**b, "_id": f"direct-{i}", "timestamp": good[0]["timestamp"]} for i, b in enumerate(bad)
    ]
    assert not couch.bulk_docs(cfg.events_db, direct).failed
    legacy = {"_id": registry_id(EVIL), "type": "entity", "entity": EVIL, "events_seen": 3}
    assert not couch.bulk_docs(cfg.db_name("models"), [legacy]).failed
    with worker_fleet(cfg, settings_env(cfg), tmp_path / "logs", names=("w1",)) as fleet:
        plan = wait_run(
            couch, cfg, fleet.app().send_task("couchwatch.plan_scoring", kwargs={"force": True}).id
        )
        tplan = wait_run(
            couch, cfg, fleet.app().send_task("couchwatch.plan_training", kwargs={"force": True}).id
        )
    assert plan["outcome"] == "succeeded", plan["error"]
    assert plan["events_in"] == 320 and plan["details"]["quarantined"] == 5
    assert tplan["outcome"] == "succeeded", tplan["error"]
    assert tplan["details"]["skipped_entities"] == {
        ascii(EVIL): ("entity field 'entity' contains the control character U+000D")
    }
    registered = {
        d["entity"] for d in _docs(couch, cfg.db_name("models")) if d.get("type") == "entity"
    }
    assert registered == {"alice", "bob", EVIL}  # no new bad entity; the legacy one untouched
    quarantine = _docs(couch, cfg.db_name("quarantine"))
    assert len(quarantine) == 15 and all("control character" in q["reason"] for q in quarantine)
    assert len(_docs(couch, cfg.events_db)) == 320 + 5  # the direct writes stay, quarantined
    print(
        f"\n[entity-ids] {len(BAD_ENTITIES)} control-character ids x 3 write paths: "
        f"{len(quarantine)} quarantined, 320 neighbours stored and planned, "
        f"1 legacy entity skipped by plan_training"
    )


# --- item 2: a notification that cannot be built --------------------------------------------


@pytest.fixture
def nsettings(couchdb: CouchServer, redis_service: RedisServer) -> Iterator[tuple[Settings, Any]]:
    redis.Redis.from_url(redis_service.url).flushdb()  # no rate window of an earlier test
    with running_smtp() as smtp:
        receiver = HttpReceiver()
        receiver.start()
        cfg = make_settings(
            couchdb,
            redis_service.url,
            couchwatch_smtp_host="127.0.0.1",
            couchwatch_smtp_port=smtp.port,
            couchwatch_smtp_starttls=False,
            couchwatch_smtp_from="couchwatch@test.local",
            couchwatch_smtp_to="ops@test.local",
            couchwatch_webhook_urls=receiver.url,
            couchwatch_webhook_secret="whsec-poison-1",
            couchwatch_notify_max_attempts=5,
            couchwatch_smtp_timeout_s=5,
            couchwatch_webhook_timeout_s=5,
        )
        try:
            yield cfg, (smtp, receiver)
        finally:
            receiver.stop()


def _anomaly(entity: str, i: int) -> dict[str, Any]:
    start = NOW.replace(microsecond=0) - timedelta(hours=3) + timedelta(minutes=15 * i)
    return make_anomaly(
        entity=entity,
        entity_field="user_id",
        detector="login",
        window_start=start,
        window_end=start + timedelta(minutes=15),
        event_ids=[f"e{i}"],
        score=0.9,
        threshold=0.5,
        severity="high",
        confidence=1.0,
        model={"v": 1},
        reasons=[{"text": f"country <b>KP</b> & never seen\r\nforged line {i}"}],
    )


def test_an_unbuildable_notification_never_blocks_the_others(
    nsettings: tuple[Settings, Any], tmp_path: Path
) -> None:
    cfg, (smtp, receiver) = nsettings
    sink: SmtpSink = smtp
    with (
        schema_couch(cfg) as couch,
        worker_fleet(cfg, settings_env(cfg), tmp_path / "logs", names=("w1",)) as fleet,
    ):
        # (a) anomalies of alice, of an entity with CR/LF (stored before the rule), of bob
        anomalies = [_anomaly(e, i) for i, e in enumerate(["alice", EVIL, "bob"])]
        assert not couch.bulk_docs(cfg.db_name("anomalies"), anomalies).failed
        run = _wait(fleet, couch, "couchwatch.notify", [[a["_id"] for a in anomalies]])
        assert run["outcome"] == "succeeded", run["error"]
        assert run["details"]["sent"] == 6 and run["details"]["gave_up"] == 0  # 3 x 2 channels
        subjects = sorted(str(m["Subject"]) for m in sink.messages)
        assert len(subjects) == 3 and all("\r" not in s and "\n" not in s for s in subjects)
        assert any("mallory\\r\\nBcc: all@example.com" in s for s in subjects), subjects
        assert all(m["Bcc"] is None for m in sink.messages)
        texts = [json.loads(r.body)["text"] for r in receiver.requests]
        evil = next(t for t in texts if "mallory" in t)
        assert "<!channel>" not in evil and "<https://" not in evil and "<b>" not in evil
        assert "&lt;!channel&gt; &amp; &lt;https://evil.test|click&gt;" in evil
        # (b) pending notifications whose message cannot be built, due before a good one
        docs = [
            _pending(cfg, _anomaly("carol", 5), -30, score="n/a"),  # render: ValueError
            _pending(
                cfg,
                _anomaly("dave", 6),
                -20,  # e-mail header: ValueError
                _id="notification:dave\r\nBcc: all@example.com",
            ),
            _pending(cfg, _anomaly("erin", 7), -10),
        ]
        assert not couch.bulk_docs(cfg.db_name("notifications"), docs).failed
        run2 = _wait(fleet, couch, "couchwatch.notify_pending", [])
        assert run2["outcome"] == "succeeded", run2["error"]
        assert (run2["details"]["sent"], run2["details"]["gave_up"]) == (1, 2)
        after = {d["entity"]: d for d in _docs(couch, cfg.db_name("notifications"))}
        for entity in ("carol", "dave"):
            assert after[entity]["status"] == "failed" and after[entity]["attempts"] == 1
        assert "message could not be built: ValueError" in after["carol"]["last_error"]
        assert "e-mail could not be built: ValueError" in after["dave"]["last_error"]
        assert after["erin"]["status"] == "sent" and len(sink.messages) == 4
        # the CLI escapes what it prints
        listed = _cli(cfg, "notifications", "--last", "50")
        assert listed.returncode == 0, listed.stderr
        assert "mallory\\r\\nBcc" in _assert_escaped(listed.stdout)
        failed = _cli(cfg, "notifications", "--failed")
        assert _assert_escaped(failed.stdout).count("last error:") == 2
        shown = _cli(cfg, "anomalies", "--top", "10")
        assert shown.returncode == 0 and "forged line" in _assert_escaped(shown.stdout)
    print(
        f"\n[notify] 3 anomalies (1 entity with CR/LF) x 2 channels: {run['details']['sent']} "
        f"sent; 3 pending: 2 unbuildable recorded failed (attempts 1, reason), "
        f"{run2['details']['sent']} sent after them"
    )


def _pending(
    cfg: Settings, anomaly: dict[str, Any], minutes: int, score: Any = None, _id: str | None = None
) -> dict[str, Any]:
    doc = new_notification(
        anomaly,
        channel="email",
        target="smtp://127.0.0.1",
        mode="immediate",
        due_at=NOW + timedelta(minutes=minutes),
        now=NOW - timedelta(hours=1),
    )
    if score is not None:
        doc["anomaly"]["score"] = score
    if _id is not None:
        doc["_id"] = _id
    return doc


def _wait(fleet: WorkerFleet, couch: CouchClient, task: str, args: list[Any]) -> dict[str, Any]:
    return wait_run(couch, fleet.settings, fleet.app().send_task(task, args=args).id)


# --- item 3: huge integers --------------------------------------------------------------------


def test_huge_integers_are_quarantined_and_their_neighbours_stored(
    settings: Settings, api: tuple[str, Any], tmp_path: Path
) -> None:
    cfg, (url, keys) = settings, api
    couch = CouchClient.from_settings(cfg)
    good = _good(600, "cli")
    stamp = json.dumps(good[0]["timestamp"])
    huge = [
        f'{{"user_id": "alice", "timestamp": {stamp}, "bytes_sent": {HUGE}}}',
        f'{{"user_id": "alice", "timestamp": {stamp}, "status_code": {HUGE}}}',
        f'{{"user_id": "alice", "timestamp": {HUGE}}}',
        f'{{"user_id": "alice", "timestamp": {stamp}, "meta": {{"n": -{HUGE}}}}}',
    ]
    lines = [json.dumps(e) for e in good[:300]] + huge + [json.dumps(e) for e in good[300:]]
    path = tmp_path / "huge.jsonl"
    path.write_text("\n".join(lines) + "\n")
    done = _cli(cfg, "ingest", "--quiet", str(path))
    assert done.returncode == 0 and b"Traceback" not in done.stderr, done.stderr[-3000:]
    assert done.stdout.decode().startswith("accepted 600, duplicates 0, rejected 4"), done.stdout
    quarantine = _docs(couch, cfg.db_name("quarantine"))
    assert sorted(q["line"] for q in quarantine) == [301, 302, 303, 304]
    assert all("<401-digit number> is too large" in q["reason"] for q in quarantine)
    # the API: 10 good with the 4 huge in between (raw JSON: the digits as a client sends them)
    api_good = [json.dumps(e) for e in _good(10, "api", entity="bob")]
    body = '{"events": [' + ",".join([*api_good[:5], *huge, *api_good[5:]]) + "]}"
    reply = httpx.post(
        f"{url}/v1/events",
        content=body.encode(),
        timeout=60,
        headers={**keys["producer"], "Content-Type": "application/json"},
    )
    assert reply.status_code == 200, reply.text
    out = reply.json()
    assert (out["stored"], out["quarantined"]) == (10, 4)
    assert [i["status"] for i in out["items"][5:9]] == ["quarantined"] * 4
    assert len(_docs(couch, cfg.events_db)) == 610
    assert len(_docs(couch, cfg.db_name("quarantine"))) == 8
    print(
        "\n[huge-ints] 4 lines with a 401-digit integer among 600 (CLI) and 4 among 10 (API):"
        " 8 quarantined, 610 neighbours stored, exit 0, HTTP 200"
    )


# --- item 4: event-id squatting ---------------------------------------------------------------


def test_a_squatted_event_id_never_hides_the_real_event(
    settings: Settings, api: tuple[str, Any], tmp_path: Path
) -> None:
    cfg, (url, keys) = settings, api
    couch = CouchClient.from_settings(cfg)
    real = _good(12, "real")
    ids = []
    for e in real:
        doc = validate_event(e, entity_field="user_id", now=datetime.now(UTC))
        assert isinstance(doc, dict)
        ids.append(doc["_id"])
    # the squatter pre-posts other events under the ids 6 of the real ones will get
    squats = [{**real[i], "country": "KP", "bytes_sent": 0, "_id": ids[i]} for i in range(6)]
    first = _post(url, keys["squatter"], squats).json()
    assert first["stored"] == 6, first
    # the producer posts the first 8 (6 squatted) through the API, the rest with the CLI
    sent = _post(url, keys["producer"], real[:8]).json()
    assert (sent["stored"], sent.get("conflicts"), sent["duplicates"]) == (2, 6, 0), sent["items"]
    for item in sent["items"][:6]:
        assert item["status"] == "conflict" and item["id"] != item["conflict_with"]
        assert "already holds a different event" in item["reason"]
    squats_cli = [{**real[i], "country": "RU", "_id": ids[i]} for i in range(8, 10)]
    assert _post(url, keys["squatter"], squats_cli).json()["stored"] == 2
    path = tmp_path / "real.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in real[8:]))
    done = _cli(cfg, "ingest", "--quiet", str(path))
    want = "accepted 2, duplicates 0, rejected 0, id conflicts 2"
    assert done.stdout.decode().startswith(want), (done.stdout, done.stderr)
    # every real event is stored once, with its own content
    stored = [d for d in _docs(couch, cfg.events_db) if d.get("country") == "DE"]
    assert sorted(d["endpoint"] for d in stored) == sorted(e["endpoint"] for e in real)
    # sending them again stores nothing new (the alternate ids are deterministic)
    again = _post(url, keys["producer"], real[:8]).json()
    assert (again["stored"], again["conflicts"], again["duplicates"]) == (0, 0, 8), again
    assert _cli(cfg, "ingest", "--quiet", str(path)).stdout.startswith(
        b"accepted 0, duplicates 4, rejected 0"
    )
    assert len(_docs(couch, cfg.events_db)) == 12 + 8
    print(
        "\n[squatting] 8 of 12 real events pre-squatted (6 via API, 2 before a CLI ingest): "
        "12 of 12 stored (8 under new ids, reported as conflicts), re-send: 12 duplicates"
    )
