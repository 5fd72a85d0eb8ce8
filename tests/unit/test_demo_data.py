"""Demo scenario: deterministic, realistic, labeled where (and only where) it should be."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import datetime

import pytest

from workers.engine.demo.incidents import INCIDENT_KINDS
from workers.engine.demo.services import SERVICE_INCIDENT_KINDS
from workers.engine.demo_data import DemoScenario, generate_demo, write_demo

pytestmark = pytest.mark.unit

TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture(scope="module")
def small() -> DemoScenario:
    return generate_demo(users=12, days=14, seed=3)


def test_same_seed_same_scenario_other_seed_differs() -> None:
    a = generate_demo(users=6, days=8, seed=11)
    b = generate_demo(users=6, days=8, seed=11)
    c = generate_demo(users=6, days=8, seed=12)
    assert a.events == b.events
    assert a.labels == b.labels
    assert a.events != c.events


def test_ids_timestamps_and_order(small: DemoScenario) -> None:
    ids = [e["_id"] for e in small.events]
    assert len(set(ids)) == len(ids)
    assert all(i.startswith("demo-3-") for i in ids)
    stamps = [e["timestamp"] for e in small.events]
    assert all(TS_RE.match(t) for t in stamps)
    assert stamps == sorted(stamps)


def test_events_carry_the_recognised_fields(small: DemoScenario) -> None:
    types = Counter(e["type"] for e in small.events)
    assert set(types) == {"login", "request"}
    assert types["request"] > 5 * types["login"]
    for e in small.events:
        assert e["user_id"].startswith("user")
        for key in ("ip_address", "country", "region", "city", "user_agent", "status_code"):
            assert key in e, key
    requests = [e for e in small.events if e["type"] == "request"]
    assert all(e["bytes_sent"] >= 0 and e["latency_ms"] > 0 for e in requests)
    assert "incident" not in small.events[0] and "entity" not in small.events[0]


def test_every_incident_kind_is_present_and_labeled(small: DemoScenario) -> None:
    assert Counter(i.kind for i in small.incidents).keys() == set(INCIDENT_KINDS)
    kinds = small.labels["kinds"]
    flat = sorted(k for ks in kinds.values() for k in ks)
    assert flat == sorted(i.kind for i in small.incidents)
    for entity, spans in small.labels.items():
        if entity != "kinds":
            assert len(spans) == len(kinds[entity])


def test_default_scenario_size_and_incident_share() -> None:
    s = generate_demo()
    users = {e["user_id"] for e in s.events}
    assert len(users) == 50
    assert 30_000 <= len(s.events) <= 80_000
    assert 0.2 <= len({i.entity for i in s.incidents}) / 50 <= 0.3


def test_labels_match_injected_events(small: DemoScenario) -> None:
    by_id = {e["_id"]: e for e in small.events}
    for incident in small.incidents:
        assert [incident.start, incident.end] in small.labels[incident.entity]
        docs = [by_id[i] for i in incident.event_ids]
        assert docs, incident
        assert {d["user_id"] for d in docs} == {incident.entity}
        assert min(d["timestamp"] for d in docs) == incident.start
        assert max(d["timestamp"] for d in docs) == incident.end


def _home_country(s: DemoScenario, entity: str) -> str:
    return Counter(e["country"] for e in s.events if e["user_id"] == entity).most_common(1)[0][0]


def test_incident_content_fits_its_kind(small: DemoScenario) -> None:
    by_id = {e["_id"]: e for e in small.events}
    for incident in small.incidents:
        docs = [by_id[i] for i in incident.event_ids]
        home = _home_country(small, incident.entity)
        if incident.kind == "account_takeover":
            assert {d["country"] for d in docs} != {home}
            assert any(d["endpoint"].startswith("/admin/") for d in docs)
        elif incident.kind == "credential_stuffing":
            assert all(d["type"] == "login" and d["status_code"] == 401 for d in docs)
            assert len(docs) >= 40
        elif incident.kind == "impossible_travel":
            assert docs[0]["type"] == "login" and docs[0]["country"] != home
        elif incident.kind == "off_hours":
            assert all(d["country"] == home for d in docs)
        elif incident.kind == "data_exfiltration":
            normal = [
                e["bytes_sent"]
                for e in small.events
                if e["user_id"] == incident.entity and e["_id"] not in incident.event_ids
            ]
            total = sum(d["bytes_sent"] for d in docs)
            assert total > 10 * sum(normal) / 14  # more than ten normal days of bytes


def test_incidents_fall_in_the_last_quarter(small: DemoScenario) -> None:
    first = datetime.fromisoformat(small.events[0]["timestamp"])
    for incident in small.incidents:
        assert (datetime.fromisoformat(incident.start) - first).days >= 14 * 0.75 - 1


def test_benign_new_phone_is_not_labeled(small: DemoScenario) -> None:
    assert small.benign, "scenario should contain a benign change"
    for change in small.benign:
        assert change.kind == "new_phone"
        assert change.entity not in small.labels
        docs = [e for e in small.events if e["user_id"] == change.entity]
        before = {e["user_agent"] for e in docs if e["timestamp"] < change.start}
        assert change.detail not in before
        assert {e["country"] for e in docs if e["user_agent"] == change.detail} == {
            _home_country(small, change.entity)
        }


def test_entity_field_and_start_are_honoured() -> None:
    s = generate_demo(users=5, days=6, seed=1, entity_field="account", start="2026-03-02")
    assert all("account" in e and "user_id" not in e for e in s.events)
    assert s.events[0]["timestamp"] >= "2026-03-02T00:00:00.000Z"


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="users"):
        generate_demo(users=0)


def test_write_demo_round_trips(tmp_path, small: DemoScenario) -> None:
    events_path, labels_path = write_demo(tmp_path / "out", small)
    lines = events_path.read_text().splitlines()
    assert [json.loads(line) for line in lines] == small.events
    assert json.loads(labels_path.read_text()) == small.labels


def test_service_scenario_has_metric_streams_and_service_incidents() -> None:
    s = generate_demo(users=6, days=8, seed=2, entity_field="service")
    assert all("service" in e and "user_id" not in e for e in s.events)
    assert {i.kind for i in s.incidents} == set(SERVICE_INCIDENT_KINDS)
    metric_only = [e for e in s.events if set(e) == {"_id", "service", "timestamp", "latency_ms"}]
    assert metric_only, "one in three services should emit a pure latency stream"
    assert not any("user_agent" in e or e.get("type") == "login" for e in s.events)
    by_id = {e["_id"]: e for e in s.events}
    for incident in s.incidents:
        docs = [by_id[i] for i in incident.event_ids]
        assert {d["service"] for d in docs} == {incident.entity}
        assert [incident.start, incident.end] in s.labels[incident.entity]
    for change in s.benign:
        assert change.kind == "new_endpoint" and change.entity not in s.labels
