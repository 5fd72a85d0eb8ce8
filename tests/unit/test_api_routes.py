"""The HTTP API's routes on the in-memory twins (FastAPI TestClient; no server, no network):
keys and scopes, events in (stored, duplicate, quarantined), anomalies out in keyset pages,
reviews stored and kept on a rescore, every filter at several page sizes and the parameters
refused, batch limits and metrics, the entity page and its timeline.
tests/integration/test_api.py keeps what needs real processes: the jobs and /healthz through a
real worker, and schemathesis against a real uvicorn process on PouchDB Server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
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
        for s in ("ingest", "read", "review", "admin")
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


def _batch_anomaly(entity: str, start: datetime, severity: str, n: int) -> dict[str, Any]:
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


def test_bad_tampered_and_bearer_keys_on_every_route(api: Any) -> None:
    """Was tests/integration/test_api.py::test_auth_is_required_with_scopes."""
    http, keys, _, _ = api
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
    tampered = {"X-API-Key": keys["read"]["X-API-Key"][:-2] + "zz"}
    assert http.get("/v1/anomalies", headers=tampered).status_code == 401
    assert http.get("/v1/anomalies", headers=keys["ingest"]).status_code == 403
    assert http.post("/v1/events", json={"events": []}, headers=keys["read"]).status_code == 403
    reply = http.post("/v1/anomalies/x/review", json={"status": "open"}, headers=keys["read"])
    assert reply.status_code == 403
    assert http.get("/metrics", headers=keys["ingest"]).status_code == 403
    bearer = {"Authorization": "Bearer " + keys["read"]["X-API-Key"]}
    assert http.get("/v1/anomalies", headers=bearer).status_code == 200
    assert http.get("/v1/anomalies", headers=keys["admin"]).status_code == 200
    schema = http.get("/openapi.json").json()
    assert "/v1/anomalies/{anomaly_id}/review" in schema["paths"]


def test_event_batches_limits_bad_bodies_and_metrics(api: Any) -> None:
    """Was tests/integration/test_api.py::test_events_batch_limits_and_metrics."""
    http, keys, couch, cfg = api
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
    assert couch.get(cfg.events_db, body["items"][0]["id"])["country"] == "DE"
    quarantined = list(couch.iter_all_docs(cfg.db_name("quarantine")))
    assert {q["reason"] for q in quarantined} >= {"missing timestamp"} and len(quarantined) == 3

    too_many = {"events": [good] * (cfg.couchwatch_api_max_events + 1)}
    reply = http.post("/v1/events", json=too_many, headers=keys["ingest"])
    assert reply.status_code == 413 and "at most" in reply.json()["detail"]
    huge = b'{"events": ["' + b"x" * (cfg.couchwatch_api_max_body_bytes + 10) + b'"]}'
    json_headers = {**keys["ingest"], "Content-Type": "application/json"}
    reply = http.post("/v1/events", content=huge, headers=json_headers)
    assert reply.status_code == 413 and "larger than" in reply.json()["detail"]
    reply = http.post("/v1/events", content=b"{not json", headers=json_headers)
    assert reply.status_code == 400
    assert http.post("/v1/events", json={"nope": 1}, headers=keys["ingest"]).status_code == 422

    text = http.get("/metrics", headers=keys["read"]).text
    assert 'couchwatch_api_events_total{result="stored"} 1.0' in text
    assert 'couchwatch_api_events_total{result="quarantined"} 3.0' in text
    assert 'couchwatch_queue_length{queue="score"} 0.0' in text


def test_every_filter_pages_alike_at_any_limit_and_bad_parameters_are_refused(api: Any) -> None:
    """Was tests/integration/test_api.py::test_anomaly_pages_filters_and_review (index-backed
    paging past _find's default limit on PouchDB Server is tests/contract/store.py's)."""
    http, keys, couch, cfg = api
    base = datetime(2026, 3, 1, tzinfo=UTC)
    docs = [
        _batch_anomaly(entity, base + timedelta(minutes=15 * (n // 3)), sev, n)
        for n, (entity, sev) in enumerate(
            (e, s) for _ in range(9) for e, s in (("a", "high"), ("b", "low"), ("c", "high"))
        )
    ]  # 27 anomalies, three entities share each window start
    assert not couch.bulk_docs(cfg.db_name("anomalies"), docs).failed
    target = docs[4]["_id"]
    reviewed = http.post(
        f"/v1/anomalies/{target}/review",
        json={"status": "dismissed", "note": "travel"},
        headers=keys["review"],
    )
    assert reviewed.status_code == 200 and reviewed.json()["review"]["status"] == "dismissed"
    stored = couch.get(cfg.db_name("anomalies"), target)
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
    reply = http.post(
        "/v1/anomalies/nope/review", json={"status": "confirmed"}, headers=keys["review"]
    )
    assert reply.status_code == 404
    reply = http.post(
        f"/v1/anomalies/{target}/review", json={"status": "maybe"}, headers=keys["review"]
    )
    assert reply.status_code == 422
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
    # the by-severity gauge reads a _count view, which the twin does not run: that part stays
    # in tests/integration/test_api.py::test_metrics_count_anomalies_by_severity_in_a_view


def test_the_entity_profile_reads_the_model_families_and_the_timeline_bins_by_window(
    api: Any,
) -> None:
    """Was tests/integration/test_api.py::test_entity_profile_and_timeline."""
    http, keys, couch, cfg = api
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
    reply = http.post("/v1/events", json={"events": events}, headers=keys["ingest"])
    assert reply.json()["stored"] == 60
    couch.put(cfg.db_name("models"), registry.base("carol"))
    anomaly = _batch_anomaly("carol", start + timedelta(minutes=30), "high", 1)
    anomaly["review"] = {"status": "confirmed", "by": "t", "at": None, "note": "x"}
    couch.put(cfg.db_name("anomalies"), anomaly)

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
