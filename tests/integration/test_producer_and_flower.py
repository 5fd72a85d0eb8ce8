"""Producers and Flower end to end: real Redis, real PouchDB Server, two real workers, real Flower.

A producer trains and rescores through the light client (and the CLI); Flower, started with
`couchwatch flower`, lists both workers and shows the finished tasks with the entity in their
arguments behind basic auth, while its health and metrics endpoints stay open.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from couchwatch.stack.processes import free_port
from scheduler import client
from tests.conftest import settings_env
from tests.support.fleet import WorkerFleet, worker_fleet
from tests.support.services import ROOT, terminate
from tests.support.waiting import eventually
from workers.couch.client import CouchClient
from workers.couch.schema import ensure_schema
from workers.engine.demo_data import generate_demo
from workers.settings import Settings, get_settings

pytestmark = pytest.mark.integration

FLOWER_USER = "ops"
FLOWER_PASSWORD = "flower-test-9c1e"
COUCHWATCH = Path(sys.executable).parent / "couchwatch"


def _store(couch: CouchClient, settings: Settings, events: list[dict[str, Any]]) -> None:
    for start in range(0, len(events), 1000):
        assert not couch.bulk_docs(settings.events_db, events[start : start + 1000]).failed


def _finished_runs(couch: CouchClient, settings: Settings, task: str) -> list[dict[str, Any]]:
    return [
        d
        for d in couch.iter_all_docs(settings.db_name("runs"))
        if d["task"] == task and d["outcome"] not in ("running", "retrying")
    ]


@contextmanager
def flower_process(env: dict[str, str], port: int, logs: Path) -> Iterator[str]:
    """`couchwatch flower` in the background; yields its base URL; killed afterwards."""
    log = (logs / "flower.log").open("ab")
    proc = subprocess.Popen(
        [str(COUCHWATCH), "flower", f"--port={port}"],
        env=env,
        cwd=logs,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def healthy() -> bool:
            assert proc.poll() is None, f"flower exited {proc.returncode}: {logs / 'flower.log'}"
            try:
                return requests.get(f"{url}/healthcheck", timeout=2).status_code == 200
            except requests.ConnectionError:
                return False

        eventually(healthy, "Flower to answer", timeout_s=60)
        yield url
    finally:
        terminate(proc, grace_s=15)
        log.close()


@pytest.fixture
def producer_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Point the light client (which reads the process settings) at the test Redis."""
    monkeypatch.setenv("REDIS_URL", settings.redis_url)
    get_settings.cache_clear()
    client.producer_app.cache_clear()
    yield
    get_settings.cache_clear()
    client.producer_app.cache_clear()


@pytest.fixture
def fleet(settings: Settings, couch: CouchClient, tmp_path: Path) -> Iterator[WorkerFleet]:
    ensure_schema(couch, settings)
    with worker_fleet(settings, settings_env(settings), tmp_path / "logs") as running:
        yield running


def test_producer_rescore_and_flower_api(
    settings: Settings,
    couch: CouchClient,
    fleet: WorkerFleet,
    producer_env: None,
    tmp_path: Path,
) -> None:
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWER_")}
    env = {
        **base_env,
        **settings_env(settings),
        "FLOWER_USER": FLOWER_USER,
        "FLOWER_PASSWORD": FLOWER_PASSWORD,
    }
    auth = (FLOWER_USER, FLOWER_PASSWORD)
    with flower_process(env, free_port(), tmp_path / "logs") as flower:
        # Basic auth guards the API and the UI; health and metrics stay open (docs/operations.md)
        assert requests.get(f"{flower}/api/workers", timeout=10).status_code == 401
        assert (
            requests.get(f"{flower}/api/tasks", auth=(FLOWER_USER, "wrong"), timeout=10).status_code
            == 401
        )
        assert requests.get(f"{flower}/workers", timeout=10).status_code == 401
        assert requests.get(f"{flower}/healthcheck", timeout=10).text == "OK"
        assert requests.get(f"{flower}/metrics", timeout=10).status_code == 200

        # history arrives; the planner registers entities; a producer asks for training
        days = 12
        start = (datetime.now(UTC) - timedelta(days=days + 1)).replace(hour=0, minute=0, second=0)
        scenario = generate_demo(users=4, days=days, seed=5, start=start)
        events = sorted(scenario.events, key=lambda e: e["timestamp"])
        cutoff = int(len(events) * 0.7)
        _store(couch, settings, events[:cutoff])
        fleet.app().send_task("couchwatch.plan_scoring", kwargs={"force": True})
        eventually(
            lambda: _finished_runs(couch, settings, "couchwatch.plan_scoring"),
            "the first planning pass",
            timeout_s=120,
        )
        users = sorted({e["user_id"] for e in events[:cutoff]})
        train_jobs = [client.train(user) for user in users]
        eventually(
            lambda: all(client.job_status(j) == "SUCCESS" for j in train_jobs),
            "the training plans to succeed",
            timeout_s=120,
        )
        trained = eventually(
            lambda: (lambda r: r if len(r) >= len(users) else None)(
                _finished_runs(couch, settings, "couchwatch.train_entities")
            ),
            "one training run per user",
            timeout_s=240,
        )
        assert all(r["outcome"] == "succeeded" for r in trained), trained

        # the incident period arrives; a producer rescores the incident's entity and waits
        _store(couch, settings, events[cutoff:])
        fresh_from = events[cutoff]["timestamp"]
        incident_users = sorted({i.entity for i in scenario.incidents if i.start >= fresh_from})
        jobs = {user: client.rescore(user, wait=True, timeout_s=180) for user in incident_users}
        assert {client.job_status(job) for job in jobs.values()} == {"SUCCESS"}
        flagged = {a["entity"] for a in couch.iter_all_docs(settings.db_name("anomalies"))}
        assert flagged & set(incident_users), (flagged, incident_users)
        target = sorted(flagged & set(incident_users))[0]
        job = jobs[target]

        # the CLI does the same through the same client (idempotent: same documents again)
        since = (datetime.now(UTC) - timedelta(days=3)).isoformat()
        done = subprocess.run(
            [str(COUCHWATCH), "rescore", target, "--since", since, "--wait"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert done.returncode == 0, done.stderr
        cli_job, state = done.stdout.split()
        assert state == "SUCCESS" and client.job_status(cli_job) == "SUCCESS"

        # Flower: both workers listed, the finished tasks identify their entity
        def workers() -> dict[str, Any] | None:
            reply = requests.get(
                f"{flower}/api/workers", params={"refresh": "1"}, auth=auth, timeout=30
            )
            assert reply.status_code == 200, reply.text
            found: dict[str, Any] = reply.json()
            return found if {"w1@testhost", "w2@testhost"} <= set(found) else None

        eventually(workers, "Flower to list both workers", timeout_s=60)

        def tasks() -> dict[str, dict[str, Any]] | None:
            reply = requests.get(f"{flower}/api/tasks", auth=auth, timeout=30)
            assert reply.status_code == 200, reply.text
            found: dict[str, dict[str, Any]] = reply.json()
            finished = {t["name"] for t in found.values() if t["state"] == "SUCCESS"}
            wanted = {"couchwatch.train_entities", "couchwatch.rescore"}
            return found if wanted <= finished else None

        seen = eventually(tasks, "Flower to show finished train and rescore tasks", 60)
        by_id = {task_id: t for task_id, t in seen.items()}
        rescored = by_id[job]
        assert rescored["name"] == "couchwatch.rescore" and rescored["state"] == "SUCCESS"
        assert repr(target) in rescored["args"], rescored["args"]
        assert rescored["worker"] in ("w1@testhost", "w2@testhost")
        train_args = [
            t["args"]
            for t in seen.values()
            if t["name"] == "couchwatch.train_entities" and t["state"] == "SUCCESS"
        ]
        assert {u for u in users if any(repr(u) in a for a in train_args)} == set(users)


def test_flower_without_credentials_refuses(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWER_")}
    done = subprocess.run(
        [str(COUCHWATCH), "flower"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "couchwatch: error: FLOWER_USER and FLOWER_PASSWORD are not set; "
        "pass --local-only to run without them"
    ]


__all__ = ["ROOT"]
