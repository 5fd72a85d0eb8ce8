"""`couchwatch evaluate`'s path (the fleet's code on in-memory twins) writes what the real fleet
writes: the same anomaly `_id`s with the same severities and scores, on one scenario.

The real side: PouchDB Server, a private redis-server, a real `celery worker`. The planners run
in this process as beat's tasks would (so the training phase's scoring tasks, which the twin
records but does not run, are not sent either); training and scoring run in the worker.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from couchwatch.evaluate.fleet import SCORE_TASK, TRAIN_TASK, run_through_fleet
from scheduler.planning import plan_scoring, plan_training
from tests.conftest import settings_env
from tests.support.fleet import WorkerFleet, worker_fleet
from workers.couch.client import CouchClient
from workers.couch.schema import ensure_schema
from workers.engine.demo_data import generate_demo
from workers.engine.evaluation.split import train_cutoffs
from workers.fleet import Fleet
from workers.ingest import ingest_stream
from workers.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
def fleet(settings: Settings, couch: CouchClient, tmp_path: Path) -> Iterator[WorkerFleet]:
    ensure_schema(couch, settings)
    with worker_fleet(settings, settings_env(settings), tmp_path / "logs", names=("w1",)) as w:
        yield w


def _ingest(couch: CouchClient, settings: Settings, events: list[dict[str, Any]]) -> None:
    lines = "".join(json.dumps(e) + "\n" for e in events).encode()
    report = ingest_stream(couch, settings, io.BytesIO(lines), fmt="jsonl", source="test")
    assert report.accepted == len(events)


def _wait_runs(
    couch: CouchClient, settings: Settings, task: str, n: int, timeout_s: float = 300
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    runs: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        runs = [
            d
            for d in couch.iter_all_docs(settings.db_name("runs"))
            if d["task"] == task and d["outcome"] not in ("running", "retrying")
        ]
        if len(runs) >= n:
            return runs
        time.sleep(0.5)
    raise AssertionError(f"only {len(runs)} of {n} {task} runs finished")


def test_evaluate_path_writes_what_the_fleet_writes(
    settings: Settings, couch: CouchClient, fleet: WorkerFleet
) -> None:
    days = 10
    start = (datetime.now(UTC) - timedelta(days=days + 1)).replace(hour=0, minute=0, second=0)
    scenario = generate_demo(users=8, days=days, seed=3, start=start)
    events = scenario.events
    cutoffs = train_cutoffs(events, "user_id")
    stamps = [datetime.fromisoformat(str(e["timestamp"]).replace("Z", "+00:00")) for e in events]
    train = [e for e, t in zip(events, stamps, strict=True) if t < cutoffs[e["user_id"]]]
    test = [e for e, t in zip(events, stamps, strict=True) if t >= cutoffs[e["user_id"]]]
    assert train and test

    app = fleet.app()
    planner = Fleet.from_settings(settings)
    sent: list[str] = []

    def send(task: str, args: list[Any]) -> str:
        sent.append(task)
        return str(app.send_task(task, args=args).id)

    def record_only(task: str, args: list[Any]) -> str:
        return "not-sent"

    _ingest(couch, settings, train)
    plan_scoring(planner, record_only)
    trained = plan_training(planner, send)
    _wait_runs(couch, settings, TRAIN_TASK, trained.batches)
    _ingest(couch, settings, test)
    scored = plan_scoring(planner, send)
    assert scored.batches >= 1
    _wait_runs(couch, settings, SCORE_TASK, scored.batches)
    real = {a["_id"]: a for a in couch.iter_all_docs(settings.db_name("anomalies"))}

    twin = run_through_fleet(events, cutoffs, settings=settings, entity_field="user_id")
    mine = {a["_id"]: a for a in twin.anomalies}

    assert real, "the real fleet wrote no anomaly: the comparison would be empty"
    only = {
        side: sorted(
            (
                d["entity"],
                d["detector"],
                d["window_start"],
                d["severity"],
                round(d["score"], 6),
                d["reasons"][0]["text"][:80] if d["reasons"] else "",
            )
            for k, d in docs.items()
            if k not in other
        )
        for side, docs, other in (("fleet", real, mine), ("twin", mine, real))
    }
    assert set(mine) == set(real), only
    for doc_id, doc in real.items():
        assert mine[doc_id]["severity"] == doc["severity"], doc_id
        assert mine[doc_id]["score"] == pytest.approx(doc["score"], abs=1e-9), doc_id
    assert sent.count(TRAIN_TASK) == sum(t == TRAIN_TASK for t, _ in twin.tasks)
