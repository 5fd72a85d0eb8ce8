"""The HTTP API's routes on the in-memory twins (FastAPI TestClient; no server, no network):
keys and scopes, events in (stored, duplicate, quarantined), anomalies out in keyset pages,
reviews stored and kept on a rescore, the entity page. tests/integration/test_api.py runs the
same app on PouchDB Server and a real uvicorn process."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from couchwatch.api.app import create_app
from couchwatch.api.metrics import ApiMetrics
from workers.couch.memory import MemoryCouchClient, memory_redis
from workers.couch.schema import ensure_schema
from workers.settings import Settings
from workers.store import anomalies as anomaly_store
from workers.store import registry
from workers.store.anomalies import make_anomaly
from workers.store.keys import KeyVerifier, create_key

pytestmark = pytest.mark.unit
START = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture
def api() -> Iterator[tuple[TestClient, dict[str, dict[str, str]], MemoryCouchClient, Settings]]:
    """(TestClient, headers by scope, the twin, settings) of an app over the CouchDB twin."""
    cfg = Settings(
        _env_file=None, couchdb_user="u", couchdb_password="p", couchwatch_db_prefix="cw_"
    )  # type: ignore[call-arg]
    couch = MemoryCouchClient()
    ensure_schema(couch, cfg)
    app = create_app(cfg)
    app.state.couch = couch
    app.state.keys = KeyVerifier(couch, cfg.db_name("apikeys"))
    app.state.metrics = ApiMetrics(cfg, couch, memory_redis())
    db = cfg.db_name("apikeys")
    keys = {
        s: {"X-API-Key": create_key(couch, db, [s], name=f"t-{s}")}
        for s in ("ingest", "read", "review")
    }
    with TestClient(app) as http:
        yield http, keys, couch, cfg


def _anomaly(
    entity: str, minutes: int, severity: str = "high", score: float = 0.99
) -> dict[str, Any]:
    start = START + timedelta(minutes=minutes)
    return make_anomaly(
        entity=entity,
        entity_field="user_id",
        detector="combined",
        window_start=start,
        window_end=start + timedelta(minutes=15),
        event_ids=[f"{entity}-{minutes}"],
        score=score,
        threshold=0.95,
        severity=severity,
        confidence=1.0,
        reasons=[{"text": "unusual"}],
        model={"id": "m", "version": 1},
        now=START,
    )


def test_every_route_needs_a_key_of_its_scope(api: Any) -> None:
    http, keys, _, _ = api
    assert http.get("/v1/anomalies").status_code == 401
    assert http.get("/v1/anomalies", headers={"X-API-Key": "cw_nope_nope"}).status_code == 401
    assert http.get("/v1/anomalies", headers=keys["ingest"]).status_code == 403
    assert http.get("/v1/anomalies", headers=keys["read"]).status_code == 200
    reply = http.post("/v1/events", json={"events": []}, headers=keys["read"])
    assert reply.status_code == 403


def test_events_are_stored_once_and_invalid_ones_quarantined(api: Any) -> None:
    http, keys, couch, cfg = api
    good = {"user_id": "alice", "timestamp": "2026-03-01T10:00:00Z", "country": "DE"}
    reply = http.post(
        "/v1/events", json={"events": [good, good, {"user_id": "bob"}]}, headers=keys["ingest"]
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert [i["status"] for i in body["items"]] == ["stored", "duplicate", "quarantined"]
    assert couch.get(cfg.events_db, body["items"][0]["id"])["country"] == "DE"
    quarantined = list(couch.iter_all_docs(cfg.db_name("quarantine")))
    assert [q["reason"] for q in quarantined] == ["missing timestamp"]
    again = http.post("/v1/events", json={"events": [good]}, headers=keys["ingest"]).json()
    assert again["duplicates"] == 1 and again["stored"] == 0


def test_anomaly_pages_reviews_and_a_rescore_keeps_the_review(api: Any) -> None:
    http, keys, couch, cfg = api
    db = cfg.db_name("anomalies")
    docs = [
        _anomaly(e, 15 * i, "high" if e == "a" else "low") for i in range(20) for e in ("a", "b")
    ]
    assert not couch.bulk_docs(db, docs).failed
    seen: list[str] = []
    cursor = None
    for _ in range(20):
        params = {"limit": 7, **({"cursor": cursor} if cursor else {})}
        page = http.get("/v1/anomalies", params=params, headers=keys["read"]).json()
        seen += [a["id"] for a in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(d["_id"] for d in docs) and len(seen) == len(set(seen))
    highs = http.get(
        "/v1/anomalies", params={"severity": "high", "limit": 100}, headers=keys["read"]
    )
    assert {a["entity"] for a in highs.json()["items"]} == {"a"}
    target = docs[0]["_id"]
    reply = http.post(
        f"/v1/anomalies/{target}/review",
        json={"status": "dismissed", "note": "trip"},
        headers=keys["review"],
    )
    assert reply.status_code == 200 and reply.json()["review"]["status"] == "dismissed"
    assert (
        http.post(
            f"/v1/anomalies/{target}/review", json={"status": "dismissed"}, headers=keys["read"]
        ).status_code
        == 403
    )
    assert (
        http.post(
            "/v1/anomalies/anomaly:none/review",
            json={"status": "confirmed"},
            headers=keys["review"],
        ).status_code
        == 404
    )
    anomaly_store.upsert_all(couch, db, [_anomaly("a", 0, score=0.999)])  # the fleet rescores
    shown = http.get(f"/v1/anomalies/{target}", headers=keys["read"]).json()
    assert shown["score"] == 0.999 and shown["review"]["status"] == "dismissed"
    assert shown["review"]["note"] == "trip" and shown["review"]["by"] == "api:t-review"
    dismissed = http.get("/v1/anomalies", params={"status": "dismissed"}, headers=keys["read"])
    assert [a["id"] for a in dismissed.json()["items"]] == [target]


def test_the_entity_page_shows_the_registry_profile_and_recent_anomalies(api: Any) -> None:
    http, keys, couch, cfg = api
    events = [
        {
            "user_id": "alice",
            "timestamp": f"2026-03-01T{h:02d}:00:00Z",
            "type": "login",
            "country": "DE",
        }
        for h in range(8, 12)
    ]
    assert (
        http.post("/v1/events", json={"events": events}, headers=keys["ingest"]).status_code == 200
    )
    models = cfg.db_name("models")
    couch.put(
        models,
        {
            **registry.base("alice"),
            "events_seen": 4,
            "latest_batch_start": "2026-03-01T08:00:00.000Z",
        },
    )
    couch.bulk_docs(cfg.db_name("anomalies"), [_anomaly("alice", 60 * 9)])
    reply = http.get("/v1/entities/alice", headers=keys["read"])
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["entity"] == "alice" and body["registry"]["events_seen"] == 4
    assert [a["entity"] for a in body["recent_anomalies"]] == ["alice"]
    assert body["model"]["active_version"] is None
    assert http.get("/v1/entities/nobody", headers=keys["read"]).status_code == 404
