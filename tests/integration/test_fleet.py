"""The worker fleet end to end: real Redis, real PouchDB Server, two real `celery worker`s."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import settings_env
from tests.support.fleet import WorkerFleet, worker_fleet
from workers import detection
from workers.couch.client import CouchClient
from workers.couch.schema import ensure_schema
from workers.engine.demo_data import generate_demo
from workers.settings import Settings
from workers.store.models import head_id

pytestmark = pytest.mark.integration


def _store(couch: CouchClient, settings: Settings, events: list[dict[str, Any]]) -> None:
    for start in range(0, len(events), 1000):
        result = couch.bulk_docs(settings.events_db, events[start : start + 1000])
        assert not result.failed


def _wait_runs(
    couch: CouchClient, settings: Settings, task: str, n: int, timeout_s: float = 240
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    done: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        runs = [
            d
            for d in couch.iter_all_docs(settings.db_name("runs"))
            if d["task"] == task and d["outcome"] not in ("running", "retrying")
        ]
        done = runs
        if len(runs) >= n:
            return runs
        time.sleep(0.5)
    raise AssertionError(f"only {len(done)} of {n} {task} runs finished")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A population cap below the busiest users' history, so that the test sees it apply."""
    return settings.model_copy(update={"couchwatch_population_events_per_entity": 300})


@pytest.fixture
def fleet(settings: Settings, couch: CouchClient, tmp_path: Path) -> Iterator[WorkerFleet]:
    ensure_schema(couch, settings)
    with worker_fleet(settings, settings_env(settings), tmp_path / "logs") as running:
        yield running


def test_plan_train_score_through_two_workers(
    settings: Settings, couch: CouchClient, fleet: WorkerFleet
) -> None:
    days = 12
    start = (datetime.now(UTC) - timedelta(days=days + 1)).replace(hour=0, minute=0, second=0)
    scenario = generate_demo(users=6, days=days, seed=11, start=start)
    events = sorted(scenario.events, key=lambda e: e["timestamp"])
    cutoff = int(len(events) * 0.7)
    history, fresh = events[:cutoff], events[cutoff:]
    _store(couch, settings, history)
    app = fleet.app()
    users = sorted({e["user_id"] for e in history})

    app.send_task("couchwatch.plan_scoring", kwargs={"force": True})
    _wait_runs(couch, settings, "couchwatch.plan_scoring", 1)
    registry = [d for d in couch.iter_all_docs(settings.db_name("models")) if d["type"] == "entity"]
    assert sorted(d["entity"] for d in registry) == users
    assert sum(d["events_seen"] for d in registry) == len(history)

    app.send_task("couchwatch.plan_training", kwargs={"force": True})
    train_runs = _wait_runs(couch, settings, "couchwatch.train_entities", 1)
    for user in users:
        head = couch.get(settings.db_name("models"), head_id(user))
        assert head is not None and head["active_version"] == 1, user
    assert all(r["outcome"] == "succeeded" for r in train_runs)
    # the population profile reads a bounded number of events per sampled entity
    population = couch.get(settings.db_name("models"), detection.POPULATION_ID)
    cap = settings.couchwatch_population_events_per_entity
    per_user = [sum(e["user_id"] == u for e in history) for u in users]
    assert max(per_user) > cap  # the cap matters in this scenario
    assert population is not None and population["entities"] == len(users)
    assert population["events"] == sum(min(n, cap) for n in per_user)

    # the rest of the period arrives (with the injected incidents); the next pass scores it
    _store(couch, settings, fresh)
    app.send_task("couchwatch.plan_scoring", kwargs={"force": True})
    plans = _wait_runs(couch, settings, "couchwatch.plan_scoring", 2)
    assert sum(p["events_in"] for p in plans) == len(events)
    # the first pass enqueued no scoring (no model, no population: the history waited for the
    # first models, which kept it as history); this pass's batch is the only one
    score_runs = _wait_runs(couch, settings, "couchwatch.score_entities", 1)
    anomalies = list(couch.iter_all_docs(settings.db_name("anomalies")))
    assert anomalies, "no anomalies written"
    assert all(a["reasons"] and a["reasons"][0]["text"] for a in anomalies)
    assert all(0 <= a["score"] <= 1 and a["review"]["status"] == "open" for a in anomalies)
    flagged = {a["entity"] for a in anomalies if a["severity"] in ("medium", "high")}
    incident_users = {i.entity for i in scenario.incidents}
    assert flagged & incident_users, (flagged, incident_users)
    # a burst of rescoring jobs queued at once is shared by both workers (prefetch 1)
    for user in users:
        app.send_task("couchwatch.rescore", args=[user, None, None])
    rescore_runs = _wait_runs(couch, settings, "couchwatch.rescore", len(users))
    workers = {r["worker"] for r in score_runs + train_runs + rescore_runs}
    assert len(workers) == 2, workers  # both worker hostnames did work
