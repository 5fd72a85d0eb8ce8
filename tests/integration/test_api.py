"""The HTTP API against a real PouchDB Server and Redis (and real workers for jobs/healthz):
every endpoint, auth, bad input, keyset pages, reviews kept on rescore, and a schemathesis run
against the served OpenAPI schema on a real uvicorn process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from couchwatch.api.app import create_app
from couchwatch.stack.processes import free_port
from scheduler import client as producer
from tests.conftest import settings_env
from tests.support.fleet import worker_fleet
from tests.support.services import ROOT, terminate
from tests.support.waiting import eventually
from workers.couch.client import CouchClient
from workers.couch.schema import ensure_schema
from workers.engine.demo_data import generate_demo
from workers.settings import Settings, get_settings
from workers.store.anomalies import make_anomaly
from workers.store.keys import create_key
from workers.store.registry import registry_id

pytestmark = pytest.mark.integration


@pytest.fixture
def api(settings: Settings, couch: CouchClient, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """(TestClient, keys by scope) on an app over the test databases."""
    ensure_schema(couch, settings)
    monkeypatch.setenv("REDIS_URL", settings.redis_url)  # the producer client's settings
    get_settings.cache_clear()
    producer.producer_app.cache_clear()
    db = settings.db_name("apikeys")
    keys = {s: create_key(couch, db, [s], name=f"t-{s}") for s in ("ingest", "read", "review")}
    keys["admin"] = create_key(couch, db, ["admin"], name="t-admin")
    with TestClient(create_app(settings)) as http:
        yield http, {s: {"X-API-Key": k} for s, k in keys.items()}
    get_settings.cache_clear()
    producer.producer_app.cache_clear()


def _anomaly(entity: str, start: datetime, severity: str, n: int) -> dict[str, Any]:
    return make_anomaly(
        entity=entity,
        entity_field="user_id",
        detector="window",
        window_start=start,
        window_end=start + timedelta(minutes=15),
        event_ids=[f"e{n}"],
        score=0.5 + n / 1000,
        threshold=0.5,
        severity=severity,
        confidence=1.0,
        reasons=[{"text": f"reason {n}"}],
        model={"id": "m", "version": 1},
    )


def test_auth_is_required_with_scopes(api: Any) -> None:
    http, keys = api
    for method, path in [
        ("GET", "/v1/anomalies"),
        ("GET", "/metrics"),
        ("GET", "/healthz"),
        ("POST", "/v1/events"),
        ("GET", "/v1/entities/x"),
        ("POST", "/v1/jobs/rescore"),
        ("GET", "/v1/jobs/abc"),
    ]:
        assert http.request(method, path).status_code == 401, path
        bad = {"X-API-Key": "cwk_0123456789abcdef_" + "x" * 43}
        assert http.request(method, path, headers=bad).status_code == 401, path
        assert http.request(method, path, headers={"X-API-Key": "nonsense"}).status_code == 401
    # a real key with a tampered secret is refused too
    tampered = {"X-API-Key": keys["read"]["X-API-Key"][:-2] + "zz"}
    assert http.get("/v1/anomalies", headers=tampered).status_code == 401
    assert http.get("/v1/anomalies", headers=keys["ingest"]).status_code == 403
    assert http.post("/v1/events", json={"events": []}, headers=keys["read"]).status_code == 403
    assert (
        http.post(
            "/v1/anomalies/x/review", json={"status": "open"}, headers=keys["read"]
        ).status_code
        == 403
    )
    assert http.get("/metrics", headers=keys["ingest"]).status_code == 403
    bearer = {"Authorization": "Bearer " + keys["read"]["X-API-Key"]}
    assert http.get("/v1/anomalies", headers=bearer).status_code == 200
    assert http.get("/v1/anomalies", headers=keys["admin"]).status_code == 200
    schema = http.get("/openapi.json").json()
    assert "/v1/anomalies/{anomaly_id}/review" in schema["paths"]


def test_events_batch_limits_and_metrics(api: Any, settings: Settings, couch: CouchClient) -> None:
    http, keys = api
    now = datetime.now(UTC)
    good = {"user_id": "alice", "timestamp": now.isoformat(), "country": "DE"}
    batch = [
        good,
        good,
        {"user_id": "bob"},
        "not an object",
        {"user_id": "bob", "timestamp": now.isoformat(), "status_code": 42},
    ]
    reply = http.post("/v1/events", json={"events": batch}, headers=keys["ingest"])
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert [i["status"] for i in body["items"]] == [
        "stored",
        "duplicate",
        "quarantined",
        "quarantined",
        "quarantined",
    ]
    assert body["items"][2]["reason"] == "missing timestamp"
    assert couch.get(settings.events_db, body["items"][0]["id"])["country"] == "DE"
    quarantined = list(couch.iter_all_docs(settings.db_name("quarantine")))
    assert {q["reason"] for q in quarantined} >= {"missing timestamp"} and len(quarantined) == 3
    again = http.post("/v1/events", json={"events": [good]}, headers=keys["ingest"]).json()
    assert again["duplicates"] == 1 and again["stored"] == 0

    too_many = {"events": [good] * (settings.couchwatch_api_max_events + 1)}
    reply = http.post("/v1/events", json=too_many, headers=keys["ingest"])
    assert reply.status_code == 413 and "at most" in reply.json()["detail"]
    huge = b'{"events": ["' + b"x" * (settings.couchwatch_api_max_body_bytes + 10) + b'"]}'
    reply = http.post(
        "/v1/events", content=huge, headers={**keys["ingest"], "Content-Type": "application/json"}
    )
    assert reply.status_code == 413 and "larger than" in reply.json()["detail"]
    reply = http.post(
        "/v1/events",
        content=b"{not json",
        headers={**keys["ingest"], "Content-Type": "application/json"},
    )
    assert reply.status_code == 400
    assert http.post("/v1/events", json={"nope": 1}, headers=keys["ingest"]).status_code == 422

    text = http.get("/metrics", headers=keys["read"]).text
    assert 'couchwatch_api_events_total{result="stored"} 1.0' in text
    assert 'couchwatch_api_events_total{result="quarantined"} 3.0' in text
    assert 'couchwatch_queue_length{queue="score"} 0.0' in text


def test_anomaly_pages_filters_and_review(api: Any, settings: Settings, couch: CouchClient) -> None:
    http, keys = api
    base = datetime(2026, 3, 1, tzinfo=UTC)
    docs = [
        _anomaly(entity, base + timedelta(minutes=15 * (n // 3)), sev, n)
        for n, (entity, sev) in enumerate(
            (e, s) for _ in range(9) for e, s in (("a", "high"), ("b", "low"), ("c", "high"))
        )
    ]  # 27 anomalies, three entities share each window start
    assert not couch.bulk_docs(settings.db_name("anomalies"), docs).failed
    target = docs[4]["_id"]
    reviewed = http.post(
        f"/v1/anomalies/{target}/review",
        json={"status": "dismissed", "note": "travel"},
        headers=keys["review"],
    )
    assert reviewed.status_code == 200 and reviewed.json()["review"]["status"] == "dismissed"
    stored = couch.get(settings.db_name("anomalies"), target)
    assert stored["review"]["note"] == "travel" and stored["review"]["by"] == "api:t-review"

    def walk(params: dict[str, Any], limit: int) -> list[str]:
        seen: list[str] = []
        cursor = None
        for _ in range(100):
            query = {**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
            page = http.get("/v1/anomalies", params=query, headers=keys["read"])
            assert page.status_code == 200, page.text
            body = page.json()
            assert len(body["items"]) <= limit
            seen += [a["id"] for a in body["items"]]
            cursor = body["next_cursor"]
            if cursor is None:
                return seen
        raise AssertionError("pagination did not end")

    def expect(pred: Callable[[dict[str, Any]], bool]) -> list[str]:
        chosen = sorted((d for d in docs if pred(d)), key=lambda d: (d["window_start"], d["_id"]))
        return [d["_id"] for d in reversed(chosen)]

    since, until = "2026-03-01T00:30:00Z", "2026-03-01T01:30:00Z"
    cases: list[tuple[dict[str, Any], Callable[[dict[str, Any]], bool]]] = [
        ({}, lambda d: True),
        ({"entity": "a"}, lambda d: d["entity"] == "a"),
        ({"severity": "high"}, lambda d: d["severity"] == "high"),
        ({"status": "dismissed"}, lambda d: d["_id"] == target),
        (
            {"status": "open", "severity": "high"},
            lambda d: d["_id"] != target and d["severity"] == "high",
        ),
        (
            {"since": since, "until": until},
            lambda d: "2026-03-01T00:30" <= d["window_start"] < "2026-03-01T01:30",
        ),
        (
            {"entity": "c", "since": since},
            lambda d: d["entity"] == "c" and d["window_start"] >= "2026-03-01T00:30",
        ),
    ]
    for params, pred in cases:
        for limit in (1, 4, 50):
            got, want = walk(params, limit), expect(pred)
            assert got == want, (params, limit, [want.index(g) for g in got], len(want))

    one = http.get(f"/v1/anomalies/{target}", headers=keys["read"]).json()
    assert one["id"] == target and one["reasons"] == [{"text": "reason 4"}]
    assert http.get("/v1/anomalies/nope", headers=keys["read"]).status_code == 404
    assert http.get("/v1/anomalies/_all_docs", headers=keys["read"]).status_code == 404
    assert (
        http.post(
            "/v1/anomalies/nope/review", json={"status": "confirmed"}, headers=keys["review"]
        ).status_code
        == 404
    )
    assert (
        http.post(
            f"/v1/anomalies/{target}/review", json={"status": "maybe"}, headers=keys["review"]
        ).status_code
        == 422
    )
    bad_params = [
        {"since": "yesterday"},
        {"since": until, "until": since},
        {"cursor": "xx"},
        {"limit": 0},
        {"limit": 1000},
        {"since": "2026-01-01T00:00:00"},
    ]
    for params in bad_params:
        status = http.get("/v1/anomalies", params=params, headers=keys["read"]).status_code
        assert status in (400, 422), params
    first = http.get("/v1/anomalies", params={"limit": 2}, headers=keys["read"]).json()
    other = {"entity": "a", "cursor": first["next_cursor"]}
    assert http.get("/v1/anomalies", params=other, headers=keys["read"]).status_code == 400

    text = http.get("/metrics", headers=keys["admin"]).text
    assert 'couchwatch_anomalies{severity="high"} 18.0' in text


def test_entity_profile_and_timeline(api: Any, settings: Settings, couch: CouchClient) -> None:
    http, keys = api
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=2)
    agent = "Mozilla/5.0 (Windows NT 10.0) Chrome/120.0"
    events = [
        {
            "user_id": "carol",
            "timestamp": (start + timedelta(minutes=7 * i)).isoformat(),
            "country": "FR" if i % 10 else "DE",
            "user_agent": agent,
            "bytes_sent": 100 + i,
        }
        for i in range(60)
    ]
    assert (
        http.post("/v1/events", json={"events": events}, headers=keys["ingest"]).json()["stored"]
        == 60
    )
    models = settings.db_name("models")
    couch.put(models, {"_id": registry_id("carol"), "type": "entity", "entity": "carol"})
    anomaly = _anomaly("carol", start + timedelta(minutes=30), "high", 1)
    anomaly["review"] = {"status": "confirmed", "by": "t", "at": None, "note": "x"}
    couch.put(settings.db_name("anomalies"), anomaly)

    assert http.get("/v1/entities/nobody", headers=keys["read"]).status_code == 404
    body = http.get("/v1/entities/carol", headers=keys["read"]).json()
    profile = body["profile"]
    assert profile["events_read"] == 60 and profile["countries"][0]["value"] == "FR"
    assert profile["browsers"][0]["value"] == "Chrome"
    # the families the model reads (ua-parser), not substrings of the agent
    assert profile["devices"][0]["value"] == "Desktop" and profile["os"][0]["value"] == "Windows"
    assert sum(profile["hours_utc"]) == 60
    assert body["model"]["active_version"] is None
    assert [a["id"] for a in body["recent_anomalies"]] == [anomaly["_id"]]

    line = http.get("/v1/entities/carol/timeline", headers=keys["read"]).json()
    assert sum(w["events"] for w in line["windows"]) == 60
    assert all(w["events"] in (2, 3) for w in line["windows"])  # 7-minute spacing, 15-min bins
    assert line["anomalies"][0]["score"] == anomaly["score"]
    assert line["reviews"][0]["status"] == "confirmed"
    narrow = {
        "since": (start + timedelta(hours=1)).isoformat(),
        "until": (start + timedelta(hours=2)).isoformat(),
    }
    part = http.get("/v1/entities/carol/timeline", params=narrow, headers=keys["read"]).json()
    assert sum(w["events"] for w in part["windows"]) == len(
        [e for e in events if narrow["since"] <= e["timestamp"] < narrow["until"]]
    )
    for params in (
        {"since": "2026-01-01T00:00:00Z", "until": "2026-06-01T00:00:00Z"},
        {"since": "garbage"},
        {"until": "0001-01-01T00:00:00+14:00"},
    ):
        reply = http.get("/v1/entities/carol/timeline", params=params, headers=keys["read"])
        assert reply.status_code == 400, params


def test_jobs_healthz_and_review_kept_on_rescore(
    api: Any, settings: Settings, couch: CouchClient, tmp_path: Path
) -> None:
    http, keys = api
    health = http.get("/healthz", headers=keys["ingest"])  # any valid key
    assert health.status_code == 503 and not health.json()["checks"]["workers"]["ok"]
    assert health.json()["checks"]["couchdb"]["ok"] and health.json()["checks"]["redis"]["ok"]
    bad = http.post(
        "/v1/jobs/rescore", json={"entity": "x", "since": "nope"}, headers=keys["ingest"]
    )
    assert bad.status_code == 400
    assert http.post(
        "/v1/jobs/train", json={"entity": True}, headers=keys["ingest"]
    ).status_code in (400, 422)

    with worker_fleet(settings, settings_env(settings), tmp_path / "logs", names=("w1",)):
        health = http.get("/healthz", headers=keys["read"]).json()
        assert health["ok"] and health["checks"]["workers"]["workers"] == ["w1@testhost"]
        days = 10
        start = (datetime.now(UTC) - timedelta(days=days + 1)).replace(hour=0, minute=0)
        scenario = generate_demo(users=5, days=days, seed=5, start=start)
        events = sorted(scenario.events, key=lambda e: e["timestamp"])
        cutoff = int(len(events) * 0.7)

        def post(batch: list[dict[str, Any]]) -> None:
            for i in range(0, len(batch), 1000):
                reply = http.post(
                    "/v1/events", json={"events": batch[i : i + 1000]}, headers=keys["ingest"]
                )
                assert reply.status_code == 200 and reply.json()["quarantined"] == 0

        post(events[:cutoff])
        producer.producer_app().send_task("couchwatch.plan_scoring", kwargs={"force": True})
        fresh_from = events[cutoff]["timestamp"]
        user = sorted(i.entity for i in scenario.incidents if i.start >= fresh_from)[0]
        eventually(
            lambda: couch.get(settings.db_name("models"), registry_id(user)),
            "the planner to register entities",
        )
        job = http.post("/v1/jobs/train", json={"entity": user}, headers=keys["ingest"])
        assert job.status_code == 202
        eventually(
            lambda: http.get(f"/v1/entities/{user}", headers=keys["read"]).json()["model"][
                "active_version"
            ],
            "the model to be trained",
            timeout_s=300,
        )

        def rescore() -> dict[str, Any]:
            reply = http.post("/v1/jobs/rescore", json={"entity": user}, headers=keys["ingest"])
            assert reply.status_code == 202, reply.text
            job_id = reply.json()["job_id"]
            return eventually(
                lambda: (lambda j: j if j["state"] == "SUCCESS" and j["run"] else None)(
                    http.get(f"/v1/jobs/{job_id}", headers=keys["read"]).json()
                ),
                "the rescore job",
                timeout_s=300,
            )

        post(events[cutoff:])
        assert rescore()["run"]["outcome"] == "succeeded"
        page = http.get("/v1/anomalies", params={"entity": user}, headers=keys["read"]).json()
        assert page["items"], "the demo user has no anomalies to review"
        target = page["items"][0]["id"]
        http.post(
            f"/v1/anomalies/{target}/review",
            json={"status": "confirmed", "note": "n"},
            headers=keys["review"],
        ).raise_for_status()
        rescore()
        kept = http.get(f"/v1/anomalies/{target}", headers=keys["read"]).json()
        assert kept["review"]["status"] == "confirmed" and kept["review"]["note"] == "n"
        entity = http.get(f"/v1/entities/{user}", headers=keys["read"]).json()
        assert entity["model"]["meta"]["thresholds"] and entity["profile"]["events_read"] > 0


def test_schemathesis_finds_no_server_errors(
    settings: Settings, couch: CouchClient, tmp_path: Path
) -> None:
    ensure_schema(couch, settings)
    key = create_key(couch, settings.db_name("apikeys"), ["admin"], name="fuzz")
    port = free_port()
    env = {**os.environ, **settings_env(settings)}
    log = (tmp_path / "api.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "couchwatch.cli.main", "api", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            assert proc.poll() is None, (tmp_path / "api.log").read_text()
            try:
                return httpx.get(f"{url}/openapi.json", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        eventually(up, "uvicorn to answer", timeout_s=60)
        done = subprocess.run(
            [
                str(Path(sys.executable).parent / "schemathesis"),
                "run",
                f"{url}/openapi.json",
                "-H",
                f"X-API-Key: {key}",
                "--checks",
                "not_a_server_error",
                "--max-examples",
                "15",
                "--phases",
                "examples,coverage,fuzzing",
                "--exclude-path",
                "/healthz",  # 503 without workers is its documented answer
                "--request-timeout",
                "30",
                "--generation-deterministic",
                "--workers",
                "1",
            ],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    finally:
        terminate(proc, grace_s=30)
        log.close()
