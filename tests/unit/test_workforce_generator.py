"""The workforce scenario generator: deterministic, well-formed, labeled exactly where injected."""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from tests.support.shapes import Shaped
from tests.support.workforce import DEFAULT_START, SCENARIOS, workforce_roster, workforce_scenario
from tests.support.workforce_incidents import KINDS
from workers.engine.evaluation.labels import load_labels
from workers.engine.evaluation.split import train_cutoffs

pytestmark = pytest.mark.unit

USERS, DAYS = 40, 28
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
_CACHE: dict[tuple[str, int], Shaped] = {}


def scenario(name: str, seed: int = 1) -> Shaped:
    if (name, seed) not in _CACHE:
        _CACHE[name, seed] = workforce_scenario(name, users=USERS, days=DAYS, seed=seed)
    return _CACHE[name, seed]


def _at(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _local_minutes(event: dict) -> int:
    local = _at(event["timestamp"]).astimezone(ZoneInfo(event["tz"]))
    return local.hour * 60 + local.minute


def _in_label(event: dict, labels: dict) -> bool:
    spans = labels.get(event["user_id"], [])
    return any(start <= event["timestamp"] <= end for start, end in spans)


def test_same_seed_same_scenario_other_seed_other() -> None:
    a = workforce_scenario("mixed", users=20, days=21, seed=3)
    b = workforce_scenario("mixed", users=20, days=21, seed=3)
    c = workforce_scenario("mixed", users=20, days=21, seed=4)
    assert a.events == b.events and a.labels == b.labels and a.benign == b.benign
    assert a.events != c.events


def test_unknown_scenario_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown workforce scenario"):
        workforce_scenario("office", users=10, days=14)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_labels_load_one_incident_of_each_kind_on_distinct_users(name: str) -> None:
    s = scenario(name)
    labels = load_labels(s.labels)
    assert sorted(i.kind for i in labels.incidents) == sorted(KINDS)
    assert len(labels.entities()) == len(KINDS)
    assert not labels.entities() & {user for user, _ in s.benign}
    assert len({e["user_id"] for e in s.events}) == USERS


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_incidents_fall_in_the_last_quarter_after_each_users_training_cutoff(name: str) -> None:
    s = scenario(name)
    cutoffs = train_cutoffs(s.events, "user_id")
    quarter = pd.Timestamp(DEFAULT_START + timedelta(days=DAYS * 0.75))
    for incident in load_labels(s.labels).incidents:
        assert incident.start >= quarter, incident
        assert incident.start > cutoffs[incident.entity], incident


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_label_spans_exactly_events_of_its_entity(name: str) -> None:
    s = scenario(name)
    for user, spans in s.labels.items():
        if user == "kinds":
            continue
        [(start, end)] = spans
        inside = [e for e in s.events if e["user_id"] == user and start <= e["timestamp"] <= end]
        assert len(inside) >= 2
        assert inside[0]["timestamp"] == start and inside[-1]["timestamp"] == end


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_events_are_well_formed_sorted_and_uniquely_named(name: str) -> None:
    s = scenario(name)
    assert len({e["_id"] for e in s.events}) == len(s.events)
    stamps = [e["timestamp"] for e in s.events]
    assert stamps == sorted(stamps)
    for e in s.events:
        assert TS.match(e["timestamp"]), e
        assert e["type"] in ("login", "request")
        assert isinstance(e["status_code"], int) and 200 <= e["status_code"] < 600
        assert e["user_id"] and e["user_agent"] and e["asn"].startswith("AS")
        assert len(e["country"]) == 2 and e["region"] and e["city"]
        assert len(e["ip_address"].split(".")) == 4
        ZoneInfo(e["tz"])
        if e["type"] == "request":
            assert e["endpoint"].startswith("/")
            assert isinstance(e["bytes_sent"], int) and e["bytes_sent"] >= 0
            assert e["latency_ms"] > 0
        else:
            assert "endpoint" not in e


def _circular_hours(minutes: list[int]) -> float:
    angles = np.array(minutes) / 1440 * 2 * np.pi
    mean = np.arctan2(np.sin(angles).mean(), np.cos(angles).mean())
    return float(mean % (2 * np.pi) / (2 * np.pi) * 24)


def test_rotating_agents_change_hours_between_weeks() -> None:
    s = scenario("rotating")
    roster = workforce_roster("rotating", users=USERS, seed=1)
    changed = {user for user, _ in s.benign}
    logins: dict[str, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    for e in s.events:
        if e["type"] == "login" and e["status_code"] == 200 and not _in_label(e, s.labels):
            week = (_at(e["timestamp"]) - DEFAULT_START).days // 7
            logins[e["user_id"]][week].append(_local_minutes(e))
    agents = [u for u, kind in roster.items() if kind == "rotating" and u not in changed]
    assert len(agents) >= 15
    for user in agents:
        means = [_circular_hours(m) for w, m in sorted(logins[user].items()) if len(m) >= 4]
        spread = max(min(abs(a - b), 24 - abs(a - b)) for a in means for b in means)
        assert spread >= 5.0, (user, means)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_off_hours_session_is_hours_away_from_anything_the_user_does(name: str) -> None:
    s = scenario(name)
    [user] = [u for u, kinds in s.labels["kinds"].items() if kinds == ["off_hours"]]
    mine = [e for e in s.events if e["user_id"] == user]
    bad = [_local_minutes(e) for e in mine if _in_label(e, s.labels)]
    usual = [_local_minutes(e) for e in mine if not _in_label(e, s.labels)]
    distance = min(min(abs(a - b), 1440 - abs(a - b)) for a in bad for b in usual)
    assert distance >= 4 * 60 - 10, (user, distance)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_benign_changes_show_in_the_scored_period_unlabeled(name: str) -> None:
    s = scenario(name)
    described = " ".join(d for _, d in s.benign)
    for change in ("new phone", "trip to", "relocation to", "team adopts"):
        assert change in described
    if any(kind == "rotating" for kind in workforce_roster(name, users=USERS).values()):
        assert "shifts from day" in described
    relocated = next(u for u, d in s.benign if d.startswith("relocation"))
    zones = [e["tz"] for e in s.events if e["user_id"] == relocated]
    assert zones[0] != zones[-1]  # the device's zone follows the long stay
    assert _at(s.events[-1]["timestamp"]) < datetime(2026, 3, 31, tzinfo=UTC)


@pytest.mark.parametrize("seed", [2, 3, 4, 5])
def test_rotating_scenario_carries_all_six_incidents_for_other_seeds(seed: int) -> None:
    labels = load_labels(scenario("rotating", seed).labels)
    assert sorted(i.kind for i in labels.incidents) == sorted(KINDS)
