"""Scenario generators: deterministic, labeled exactly where injected, shaped unlike the demo."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from couchwatch.cli.evaluate_cmd import demo_data
from workers.engine.demo_data import DemoScenario
from workers.engine.evaluation.labels import load_labels
from workers.engine.scenarios import SCENARIO_KINDS, SCENARIOS, generate_scenario
from workers.engine.scenarios.sites import local_hour

pytestmark = pytest.mark.unit

_CACHE: dict[tuple[str, int], DemoScenario] = {}


def scenario(name: str, seed: int = 1) -> DemoScenario:
    """``name`` at users=60, days=28 (generated once per test session)."""
    if (name, seed) not in _CACHE:
        _CACHE[name, seed] = generate_scenario(name, users=60, days=28, seed=seed)
    return _CACHE[name, seed]


def _ms(ts: str) -> int:
    return int(datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1000)


def _incident_ids(s: DemoScenario) -> set[str]:
    return {i for incident in s.incidents for i in incident.event_ids}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_deterministic_and_seed_dependent(name: str) -> None:
    a = generate_scenario(name, users=15, days=10, seed=4)
    b = generate_scenario(name, users=15, days=10, seed=4)
    c = generate_scenario(name, users=15, days=10, seed=5)
    assert a.events == b.events and a.labels == b.labels and a.benign == b.benign
    assert a.events != c.events


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_events_sorted_unique_and_labels_load(name: str) -> None:
    s = scenario(name)
    stamps = [e["timestamp"] for e in s.events]
    assert stamps == sorted(stamps)
    assert all(t.endswith("Z") and len(t) == 24 for t in stamps)
    ids = [e["_id"] for e in s.events]
    assert len(set(ids)) == len(ids) and ids[0] == f"{name}-1-000000"
    labels = load_labels(json.loads(json.dumps(s.labels)))
    assert len(labels) == len(s.incidents)
    assert all(s.entity_field in e for e in s.events)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_kind_injected_late_and_spans_cover_exactly_the_injected_events(name: str) -> None:
    s = scenario(name)
    assert set(SCENARIO_KINDS[name]) <= Counter(i.kind for i in s.incidents).keys()
    by_id = {e["_id"]: e for e in s.events}
    first_late = _ms(s.events[0]["timestamp"][:10] + "T00:00:00.000Z") + 21 * 86_400_000
    for incident in s.incidents:
        stamps = sorted(by_id[i]["timestamp"] for i in incident.event_ids)
        assert (incident.start, incident.end) == (stamps[0], stamps[-1])
        assert all(by_id[i][s.entity_field] == incident.entity for i in incident.event_ids)
        assert _ms(incident.start) >= first_late - 86_400_000  # local midnight may be UTC eve
        spans = s.labels[incident.entity]
        assert [incident.start, incident.end] in spans


def test_sparse_share_of_users_with_one_or_two_sessions_a_day() -> None:
    s = generate_scenario("sparse", users=100, days=28, seed=2)
    incident = _incident_ids(s)
    logins: dict[str, Counter[str]] = defaultdict(Counter)
    for e in s.events:
        if e["type"] == "login" and e["status_code"] == 200 and e["_id"] not in incident:
            logins[e["user_id"]][e["timestamp"][:10]] += 1
    sparse = [u for u, days in logins.items() if sorted(days.values())[len(days) // 2] <= 2]
    assert 0.6 <= len(sparse) / 100 <= 0.8
    weekend = sum(
        n
        for days in logins.values()
        for day, n in days.items()
        if datetime.fromisoformat(day).weekday() >= 5
    )
    assert weekend / sum(sum(d.values()) for d in logins.values()) < 0.1  # weekends are quiet
    assert len({e["tz"] for e in s.events}) >= 8


def test_shifts_has_night_workers_active_at_local_night() -> None:
    s = scenario("shifts")
    incident = _incident_ids(s)
    hours: dict[str, list[float]] = defaultdict(list)
    for e in s.events:
        if e["_id"] not in incident:
            hours[e["user_id"]].append(local_hour(_ms(e["timestamp"]), e["tz"]))
    night = [u for u, h in hours.items() if sum(x >= 22 or x < 6 for x in h) / len(h) > 0.9]
    assert len(night) >= 0.2 * 60


def test_off_hours_is_at_hours_the_user_never_worked() -> None:
    s = scenario("shifts")
    incident = _incident_ids(s)
    worked: dict[str, set[int]] = defaultdict(set)
    for e in s.events:
        if e["_id"] not in incident:
            worked[e["user_id"]].add(int(local_hour(_ms(e["timestamp"]), e["tz"])))
    by_id = {e["_id"]: e for e in s.events}
    for inc in (i for i in s.incidents if i.kind == "off_hours"):
        hours = {int(local_hour(_ms(by_id[i]["timestamp"]), by_id[i]["tz"])) for i in inc.event_ids}
        assert not hours & worked[inc.entity]


@pytest.mark.parametrize("name", ["sparse", "travel", "devices", "mixed", "shifts"])
def test_benign_changes_are_present_and_unlabeled(name: str) -> None:
    s = scenario(name)
    assert s.benign
    incident = _incident_ids(s)
    for change in s.benign:
        assert change.entity not in s.labels
        changed = [
            e for e in s.events if e["user_id"] == change.entity and e["timestamp"] >= change.start
        ]
        assert changed and not any(e["_id"] in incident for e in changed)


def test_devices_new_device_is_kept_for_later_logins() -> None:
    s = scenario("devices")
    for change in (c for c in s.benign if c.kind == "new_device"):
        later = [
            e for e in s.events if e["user_id"] == change.entity and e["timestamp"] >= change.start
        ]
        assert all(e["user_agent"] == change.detail for e in later)
        before = [e for e in s.events if e["user_id"] == change.entity and e not in later]
        assert before and all(e["user_agent"] != change.detail for e in before)


def test_travel_history_has_several_countries_and_benign_trips_unlabeled() -> None:
    s = scenario("travel")
    first_late = "2026-01-26"
    countries: dict[str, set[str]] = defaultdict(set)
    for e in s.events:
        if e["timestamp"] < first_late:
            countries[e["user_id"]].add(e["country"])
    assert sum(len(c) >= 3 for c in countries.values()) >= 10
    trips = [c for c in s.benign if c.kind == "trip"]
    assert len(trips) >= 6 and not {c.entity for c in trips} & set(s.labels)


def _daily_counts(s: DemoScenario, service: str) -> dict[str, int]:
    return Counter(e["timestamp"][:10] for e in s.events if e["service"] == service)


def test_services_have_weekly_seasonality_and_latency_only_streams() -> None:
    s = scenario("services")
    services = sorted({e["service"] for e in s.events})
    latency_only = {
        e["service"] for e in s.events if set(e) == {"_id", "service", "timestamp", "latency_ms"}
    }
    assert latency_only and len(latency_only) < len(services)
    differs = 0
    for name in sorted(set(services) - latency_only):
        counts = _daily_counts(s, name)
        weekday = [n for d, n in counts.items() if datetime.fromisoformat(d).weekday() < 5]
        weekend = [n for d, n in counts.items() if datetime.fromisoformat(d).weekday() >= 5]
        ratio = (sum(weekend) / len(weekend)) / (sum(weekday) / len(weekday))
        differs += abs(ratio - 1.0) > 0.25
    assert differs >= 0.8 * len(set(services) - latency_only)


def test_services_incidents_change_what_they_say() -> None:
    s = scenario("services")
    by_id = {e["_id"]: e for e in s.events}
    for inc in s.incidents:
        inside = [by_id[i] for i in inc.event_ids]
        if inc.kind == "error_burst":
            assert sum(e["status_code"] >= 500 for e in inside) / len(inside) >= 0.04
        if inc.kind == "traffic_spike":
            hours = (_ms(inc.end) - _ms(inc.start)) / 3_600_000
            usual = len([e for e in s.events if e["service"] == inc.entity]) / (28 * 24)
            assert len(inside) / hours > 2 * usual


def test_size_and_speed_budget() -> None:
    started = datetime.now(UTC)
    s = generate_scenario("services", users=200, days=28, seed=3)
    assert len(s.events) < 300_000
    assert (datetime.now(UTC) - started).total_seconds() < 20


def test_unknown_scenario_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown scenario"):
        generate_scenario("nope")


def test_demo_data_cli_writes_a_scenario(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        demo_data,
        [str(tmp_path), "--scenario", "sparse", "--users", "20", "--days", "14", "--seed", "3"],
    )
    assert result.exit_code == 0, result.output
    lines = (tmp_path / "events.jsonl").read_text().splitlines()
    first: dict[str, Any] = json.loads(lines[0])
    assert first["_id"] == "sparse-3-000000" and "user_id" in first
    expected = generate_scenario("sparse", users=20, days=14, seed=3)
    assert len(lines) == len(expected.events)
    assert json.loads((tmp_path / "labels.json").read_text()) == expected.labels


def test_services_benign_gaps_are_empty_and_outside_labels() -> None:
    s = scenario("services")
    gaps = [c for c in s.benign if c.kind == "data_gap"]
    assert gaps
    for gap in gaps:
        start = _ms(gap.start)
        end = _ms(gap.detail.split()[3])
        inside = [
            e for e in s.events if e["service"] == gap.entity and start <= _ms(e["timestamp"]) < end
        ]
        assert not inside
        for span_start, span_end in s.labels.get(gap.entity, []):
            assert _ms(span_end) < start or _ms(span_start) >= end
