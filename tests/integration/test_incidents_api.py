"""Incidents through the HTTP API and the CLI, over a real PouchDB Server."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from couchwatch.api.app import create_app
from couchwatch.cli.main import cli
from tests.conftest import settings_env
from workers.couch.client import CouchClient
from workers.couch.schema import ensure_schema
from workers.incidents import refresh_incidents
from workers.settings import Settings, get_settings
from workers.store.anomalies import make_anomaly
from workers.store.keys import create_key

pytestmark = pytest.mark.integration
BASE = datetime(2026, 11, 2, 8, tzinfo=UTC)


@pytest.fixture
def seeded(settings: Settings, couch: CouchClient) -> dict[str, Any]:
    """alice: 3 chained anomalies (one incident) and a lone one 5 h later; bob: one."""
    ensure_schema(couch, settings)
    specs = [
        ("alice", 0, "medium"),
        ("alice", 15, "high"),
        ("alice", 60, "low"),
        ("alice", 360, "low"),
        ("bob", 30, "medium"),
    ]
    docs = [
        make_anomaly(
            entity=e,
            entity_field="user_id",
            detector="novelty" if m == 15 else "combined",
            window_start=BASE + timedelta(minutes=m),
            window_end=BASE + timedelta(minutes=m + 15),
            event_ids=[f"e{m}"],
            score=0.9 + m / 10_000,
            threshold=0.8,
            severity=sev,
            confidence=1.0,
            reasons=[{"feature": "f", "text": f"{e} reason {m}"}],
            model={"v": 1},
        )
        for e, m, sev in specs
    ]
    assert not couch.bulk_docs(settings.db_name("anomalies"), docs).failed
    ids = refresh_incidents(couch, settings, docs).incident_ids
    return {"anomalies": docs, "incidents": ids}


@pytest.fixture
def http(settings: Settings, couch: CouchClient, seeded: dict[str, Any]) -> Iterator[Any]:
    db = settings.db_name("apikeys")
    keys = {
        s: {"X-API-Key": create_key(couch, db, [s], name=f"t-{s}")}
        for s in ("ingest", "read", "review")
    }
    with TestClient(create_app(settings)) as client:
        yield client, keys


def test_list_pages_filters_one_and_review(
    http: Any, couch: CouchClient, settings: Settings, seeded: dict[str, Any]
) -> None:
    client, keys = http
    read, review = keys["read"], keys["review"]
    assert client.get("/v1/incidents").status_code == 401
    assert client.get("/v1/incidents", headers=keys["ingest"]).status_code == 403
    listed = client.get("/v1/incidents", headers=read).json()
    assert len(listed["items"]) == 3 and listed["next_cursor"] is None
    starts = [i["start"] for i in listed["items"]]
    assert starts == sorted(starts, reverse=True)
    paged, cursor = [], None
    while True:
        page = client.get(
            "/v1/incidents",
            params={"limit": 1, **({"cursor": cursor} if cursor else {})},
            headers=read,
        ).json()
        paged += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert paged == [i["id"] for i in listed["items"]]
    high = client.get("/v1/incidents", params={"severity": "high"}, headers=read).json()["items"]
    assert len(high) == 1 and high[0]["entity"] == "alice" and high[0]["n_anomalies"] == 3
    assert high[0]["detectors"] == ["combined", "novelty"]
    bob = client.get("/v1/incidents", params={"entity": "bob"}, headers=read).json()["items"]
    assert [i["entity"] for i in bob] == ["bob"]
    late = client.get(
        "/v1/incidents", params={"since": "2026-11-02T12:00:00Z"}, headers=read
    ).json()["items"]
    assert [i["n_anomalies"] for i in late] == [1]

    one = client.get(f"/v1/incidents/{high[0]['id']}", headers=read).json()
    assert [a["window_start"][11:16] for a in one["anomalies"]] == ["08:00", "08:15", "09:00"]
    assert client.get("/v1/incidents/incident:nope", headers=read).status_code == 404

    body = {"status": "confirmed", "note": "takeover"}
    url = f"/v1/incidents/{high[0]['id']}/review"
    assert client.post(url, json=body, headers=read).status_code == 403
    done = client.post(url, json=body, headers=review)
    assert done.status_code == 200 and done.json()["review"]["status"] == "confirmed"
    stored = couch.get_many(settings.db_name("anomalies"), high[0]["anomaly_ids"])
    assert {a["review"]["status"] for a in stored.values()} == {"confirmed"}
    assert {a["review"]["note"] for a in stored.values()} == {"takeover"}
    lone = next(a for a in seeded["anomalies"] if a["window_start"].endswith("14:00:00.000Z"))
    assert couch.get(settings.db_name("anomalies"), lone["_id"])["review"]["status"] == "open"
    still = client.get("/v1/incidents", params={"status": "open"}, headers=read).json()["items"]
    assert high[0]["id"] not in {i["id"] for i in still} and len(still) == 2


def test_cli_lists_incidents_and_reviews_one(
    settings: Settings,
    couch: CouchClient,
    seeded: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key, value in settings_env(settings).items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        out = runner.invoke(cli, ["incidents"]).output
        lines = [line for line in out.splitlines() if not line.startswith("      id")]
        assert len(lines) == 3 and lines[0].startswith("high")
        assert "2026-11-02T08:00-09:15" in lines[0] and "  3 anomalies" in lines[0]
        assert "alice reason 60" in lines[0]  # the highest-scoring anomaly's reason first
        out = runner.invoke(cli, ["incidents", "--entity", "bob", "--json"]).output
        assert '"bob"' in out and '"alice"' not in out
        target = next(
            i
            for i in seeded["incidents"]
            if "alice reason 60" in str(couch.get(settings.db_name("incidents"), i))
        )
        done = runner.invoke(cli, ["review", target, "dismiss", "--note", "pen test"])
        assert done.exit_code == 0 and "dismissed (3 anomalies)" in done.output
        out = runner.invoke(cli, ["incidents", "--status", "open"]).output
        assert target not in out and out.count("review: open") == 2
        missing = runner.invoke(cli, ["review", "incident:nope", "confirm"])
        assert missing.exit_code == 1 and "no anomaly or incident" in missing.output
    finally:
        get_settings.cache_clear()
