"""Fleet resilience with real processes: a worker killed mid-batch, two beats at once,
incremental scoring from the `_changes` checkpoint. (A rescore keeping its review is
tests/unit/test_fleet_twins.py's on the twins, and through a real worker
tests/integration/test_api.py::test_jobs_healthz_and_review_kept_on_rescore's.)

Real Redis, real PouchDB Server, real `celery worker` / `celery beat` processes (never eager).
Each test uses its own Redis database number, so queues, slots and locks never leak between
tests, and its own CouchDB databases (deleted afterwards).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import redis

from tests.conftest import make_settings, settings_env
from tests.support.fleet import WorkerFleet, worker_fleet
from tests.support.services import ROOT, CouchServer, RedisServer, terminate
from tests.support.waiting import TERMINAL
from workers import detection
from workers.couch.client import CouchClient
from workers.couch.schema import ensure_schema
from workers.engine.demo_data import DemoScenario, format_ts, generate_demo
from workers.settings import DB_SUFFIXES, Settings
from workers.store.models import head_id

pytestmark = pytest.mark.integration


# --- helpers -------------------------------------------------------------------------------


def _redis_url(service: RedisServer, db: int) -> str:
    """The test Redis server, database `db` (one per test: no shared queues or keys)."""
    return service.url.rsplit("/", 1)[0] + f"/{db}"


@contextmanager
def _services(
    couchdb: CouchServer, redis_service: RedisServer, db: int, **overrides: object
) -> Iterator[tuple[Settings, CouchClient]]:
    """Settings on a private Redis database and fresh CouchDB databases (deleted afterwards)."""
    url = _redis_url(redis_service, db)
    redis.Redis.from_url(url).flushdb()
    settings = make_settings(couchdb, url, **overrides)
    client = CouchClient.from_settings(settings)
    ensure_schema(client, settings)
    try:
        yield settings, client
    finally:
        for name in (settings.events_db, *(settings.db_name(s) for s in DB_SUFFIXES)):
            client.delete_db(name)
        client.close()


def _recent_demo(users: int, days: int, seed: int = 7) -> DemoScenario:
    """A demo scenario ending about a day ago, so it lies inside the training history window."""
    start = (datetime.now(UTC) - timedelta(days=days + 1)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    return generate_demo(users=users, days=days, seed=seed, start=start)


def _store(couch: CouchClient, settings: Settings, events: list[dict[str, Any]]) -> None:
    for start in range(0, len(events), 1000):
        result = couch.bulk_docs(settings.events_db, events[start : start + 1000])
        assert not result.failed


def _runs(couch: CouchClient, settings: Settings, task: str) -> list[dict[str, Any]]:
    return [
        d
        for d in couch.iter_all_docs(settings.db_name("runs"))
        if d.get("task") == task and d.get("outcome") in TERMINAL
    ]


def _wait_runs(
    couch: CouchClient,
    settings: Settings,
    task: str,
    n: int,
    timeout_s: float = 90,
    where: Callable[[dict[str, Any]], bool] = lambda _: True,
) -> list[dict[str, Any]]:
    """Wait until at least `n` finished run records of `task` (matching `where`) exist."""
    deadline = time.monotonic() + timeout_s
    runs: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        runs = [r for r in _runs(couch, settings, task) if where(r)]
        if len(runs) >= n:
            return runs
        time.sleep(0.3)
    raise AssertionError(f"only {len(runs)} of {n} {task} runs finished in {timeout_s}s")


def _new_window_events(
    scenario: DemoScenario, entities: dict[str, int], field: str = "user_id"
) -> list[dict[str, Any]]:
    """`n` new events for each entity, in one 15-minute window later than all history."""
    last = max(e["timestamp"] for e in scenario.events)
    window = pd.Timestamp(last).floor("15min") + pd.Timedelta(minutes=30)
    out: list[dict[str, Any]] = []
    for entity, n in entities.items():
        template = [e for e in scenario.events if e[field] == entity][-1]
        for i in range(n):
            stamp = window + pd.Timedelta(seconds=20 * i + 1)
            ms = int(stamp.timestamp() * 1000)
            out.append({**template, "_id": f"new-{entity}-{i}", "timestamp": format_ts(ms)})
    return out


def _beat(env: dict[str, str], schedule: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "couchwatch.celery",
            "beat",
            "-s",
            str(schedule),
            "--loglevel=INFO",
        ],
        env=env,
        cwd=ROOT,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


# --- tests ---------------------------------------------------------------------------------


def test_kill_9_mid_training_redelivers_to_other_worker(
    couchdb: CouchServer, redis_service: RedisServer, tmp_path: Path
) -> None:
    # The visibility-timeout backstop alone (heartbeat requeue off: test_worker_lost.py has it)
    with _services(
        couchdb,
        redis_service,
        1,
        celery_visibility_timeout_s=15,
        celery_task_soft_time_limit_s=10,
        celery_task_time_limit_s=12,
        couchwatch_worker_heartbeat_s=0,
    ) as (settings, couch):
        scenario = _recent_demo(users=15, days=10)
        _store(couch, settings, scenario.events)
        users = sorted({e["user_id"] for e in scenario.events})
        assert len(users) == 15
        broker = redis.Redis.from_url(settings.redis_url)
        with worker_fleet(settings, settings_env(settings), tmp_path / "logs", ("w1",)) as fleet:
            task_id = fleet.app().send_task("couchwatch.train_entities", args=[users]).id

            deadline = time.monotonic() + 60
            while not broker.keys("couchwatch:train-lock:*"):
                assert time.monotonic() < deadline, "w1 never started training"
                time.sleep(0.05)
            killed_at = time.monotonic()
            fleet.kill("w1", signal.SIGKILL)
            assert couch.get(settings.db_name("runs"), f"run-{task_id}") is None, (
                "w1 finished the batch before it was killed: make the batch bigger"
            )

            fleet.start("w2")
            fleet.wait_ready(["w2"])
            (run,) = _wait_runs(couch, settings, "couchwatch.train_entities", 1, timeout_s=75)
            redelivered_after = time.monotonic() - killed_at

        assert run["_id"] == f"run-{task_id}"
        assert run["worker"] == "w2@testhost", run
        assert run["outcome"] == "succeeded", run
        assert redelivered_after >= settings.celery_visibility_timeout_s - 1
        for user in users:
            head = couch.get(settings.db_name("models"), head_id(user))
            assert head is not None, user
            assert len(head["versions"]) == 1, (user, head["versions"])
            assert head["active_version"] == 1, user
        models = [
            d for d in couch.iter_all_docs(settings.db_name("models")) if d.get("type") == "model"
        ]
        assert len(models) == len(users)
        assert {m["request_id"] for m in models} == {task_id}


def test_two_beats_do_not_double_planning(
    couchdb: CouchServer, redis_service: RedisServer, tmp_path: Path
) -> None:
    with _services(
        couchdb,
        redis_service,
        2,
        couchwatch_score_interval_s=5,
        couchwatch_changes_page_size=5000,  # one page per pass
    ) as (settings, couch):
        scenario = _recent_demo(users=6, days=4, seed=5)
        _store(couch, settings, scenario.events)
        users = sorted({e["user_id"] for e in scenario.events})
        # a population profile exists (as after a first training), so every pass enqueues
        # scoring; without one the history would wait for the first models (unscored.py)
        population = detection.make_population(scenario.events, entity_field="user_id")
        couch.upsert(settings.db_name("models"), detection.population_to_doc(population))
        env = {**os.environ, **settings_env(settings)}
        assert env["COUCHWATCH_SCORE_INTERVAL_S"] == "5.0"
        logs = tmp_path / "logs"
        with worker_fleet(settings, settings_env(settings), logs) as _fleet:
            beats = [_beat(env, tmp_path / f"beat{i}.db", logs / f"beat{i}.log") for i in (1, 2)]
            try:
                # the first pass picks up the stored history; then new events for two entities
                _wait_runs(couch, settings, "couchwatch.score_entities", 1, timeout_s=40)
                time.sleep(1)
                new = _new_window_events(scenario, {users[0]: 3, users[1]: 2})
                _store(couch, settings, new)
                time.sleep(15)
            finally:
                for beat in beats:
                    terminate(beat, grace_s=20)
            assert all(b.returncode is not None for b in beats)
            time.sleep(2)  # let the last enqueued scoring batches finish

        plans = _runs(couch, settings, "couchwatch.plan_scoring")
        planned = [r for r in plans if "skipped" not in r["details"]]
        skipped = [r for r in plans if "skipped" in r["details"]]
        # both beats enqueued (about 4 each in ~20 s); one planning pass per 5 s slot did work
        assert len(plans) >= 6, [(r["worker"], r["details"]) for r in plans]
        assert skipped, "no planner message was skipped: were both beats running?"
        assert len(planned) <= len(plans) // 2 + 1, (len(planned), len(plans))
        # the events were read once in all: not once per beat
        assert sum(r["events_in"] for r in planned) == len(scenario.events) + len(new)
        scores = _runs(couch, settings, "couchwatch.score_entities")
        assert len(scores) == sum(r["docs_out"] for r in planned)
        assert len(scores) == 2  # one batch per new-event batch (6 entities < batch size)
        scored: dict[str, int] = {}
        for run in scores:
            for entity in run["entities"]:
                scored[entity] = scored.get(entity, 0) + 1
        assert scored == {u: 2 if u in users[:2] else 1 for u in users}


@pytest.fixture
def fleet_env(
    couchdb: CouchServer, redis_service: RedisServer, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[Settings, CouchClient, WorkerFleet]]:
    db = 4 if "rescore" in request.node.name else 3
    with (
        _services(couchdb, redis_service, db) as (settings, couch),
        worker_fleet(settings, settings_env(settings), tmp_path / "logs") as fleet,
    ):
        yield settings, couch, fleet


def test_new_events_after_first_pass_are_scored_alone(
    fleet_env: tuple[Settings, CouchClient, WorkerFleet],
) -> None:
    settings, couch, fleet = fleet_env
    app = fleet.app()
    scenario = _recent_demo(users=6, days=8, seed=3)
    _store(couch, settings, scenario.events)
    users = sorted({e["user_id"] for e in scenario.events})

    app.send_task("couchwatch.plan_scoring", kwargs={"force": True})
    (first,) = _wait_runs(couch, settings, "couchwatch.plan_scoring", 1)
    assert first["events_in"] == len(scenario.events)
    _wait_runs(couch, settings, "couchwatch.score_entities", first["docs_out"])
    app.send_task("couchwatch.plan_training", kwargs={"force": True})
    _wait_runs(couch, settings, "couchwatch.train_entities", 1)
    before = {r["_id"] for r in _runs(couch, settings, "couchwatch.score_entities")}

    new = _new_window_events(scenario, {users[2]: 4, users[4]: 3})
    _store(couch, settings, new)
    app.send_task("couchwatch.plan_scoring", kwargs={"force": True})
    plans = _wait_runs(couch, settings, "couchwatch.plan_scoring", 2)
    (second,) = [r for r in plans if r["_id"] != first["_id"]]
    assert second["events_in"] == len(new)
    assert second["docs_out"] == 1
    (scored,) = _wait_runs(
        couch, settings, "couchwatch.score_entities", 1, where=lambda r: r["_id"] not in before
    )
    assert sorted(scored["entities"]) == sorted([users[2], users[4]])
    assert scored["outcome"] == "succeeded", scored
    assert scored["events_in"] == len(new)  # only the new events were read
    time.sleep(1)
    assert len(_runs(couch, settings, "couchwatch.score_entities")) == len(before) + 1
