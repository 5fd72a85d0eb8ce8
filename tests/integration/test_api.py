"""The HTTP API where it needs real processes: the `_count` views behind /metrics on PouchDB
Server, jobs and /healthz through a real worker (a review kept on a rescore the worker runs),
and a schemathesis run against the served OpenAPI schema on a real uvicorn process. The routes'
logic (keys and scopes, event batches and limits, keyset pages and filters, reviews, the entity
page and timeline) is tests/unit/test_api_routes.py's, on the in-memory twins."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
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


def test_metrics_count_anomalies_by_severity_in_a_view(
    api: Any, settings: Settings, couch: CouchClient
) -> None:
    """The by-severity gauge reads a `_count` view, which the CouchDB twin does not run; the
    routes' logic (keys, batches, pages, filters, the entity page) is tests/unit/
    test_api_routes.py's on the twin."""
    http, keys = api
    base = datetime(2026, 3, 1, tzinfo=UTC)
    docs = [
        _anomaly(entity, base + timedelta(minutes=15 * n), sev, n)
        for n, (entity, sev) in enumerate([("a", "high"), ("b", "low"), ("c", "high")] * 3)
    ]
    assert not couch.bulk_docs(settings.db_name("anomalies"), docs).failed
    text = http.get("/metrics", headers=keys["admin"]).text
    assert 'couchwatch_anomalies{severity="high"} 6.0' in text
    assert 'couchwatch_anomalies{severity="low"} 3.0' in text


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
