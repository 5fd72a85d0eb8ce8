"""A fresh deployment loses nothing (issue 13, item 7; results in docs/reliability.md).

A history is ingested with `couchwatch ingest` into an empty system (no registry, no population
profile, no model). Then:

(a) `couchwatch train --all --wait` at once: it must find every entity itself (it read "0
    entities" until a planning pass had filled the registry) and train each one; the events the
    first models learned from are kept as history, and every training run record says how many.
    Events arriving afterwards are scored by the next planning pass, and only they.
(b) the planner runs first (beat on a fresh system): it used to enqueue scoring that recorded
    every entity as `awaiting_history` and never came back to its events. With
    `COUCHWATCH_SCORE_FIRST_HISTORY=true` the waiting events are scored once the first model
    exists (anomalies written); by default they are kept as history, said so in the run records.

Real PouchDB Server, redis-server, one `celery worker`, the `couchwatch` CLI as subprocesses.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.conftest import make_settings, settings_env
from tests.support.fixtures import schema_couch
from tests.support.fleet import WorkerFleet, worker_fleet
from tests.support.services import ROOT, CouchServer, RedisServer
from tests.support.waiting import wait_run
from workers.couch.client import CouchClient
from workers.engine.demo_data import generate_demo
from workers.settings import Settings

pytestmark = pytest.mark.integration

USERS, DAYS = 6, 10
TRAIN, SCORE, PLAN = (
    "couchwatch.train_entities",
    "couchwatch.score_entities",
    "couchwatch.plan_scoring",
)


def _cli(cfg: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "couchwatch.cli.main", *args],
        cwd=ROOT,
        capture_output=True,
        env={**os.environ, **settings_env(cfg)},
        text=True,
        timeout=900,
        check=False,
    )


def _history(tmp: Path) -> tuple[Path, list[dict[str, Any]]]:
    start = (datetime.now(UTC) - timedelta(days=DAYS + 1)).replace(hour=0, minute=0, second=0)
    events = generate_demo(users=USERS, days=DAYS, seed=5, start=start).events
    path = tmp / "history.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path, events


def _ingest(cfg: Settings, path: Path, count: int) -> None:
    done = _cli(cfg, "ingest", "--quiet", str(path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"accepted {count}, duplicates 0, rejected 0"), done.stdout


def _runs(couch: CouchClient, cfg: Settings, task: str) -> list[dict[str, Any]]:
    return [r for r in couch.iter_all_docs(cfg.db_name("runs")) if r.get("task") == task]


def _registry(couch: CouchClient, cfg: Settings) -> dict[Any, dict[str, Any]]:
    docs = couch.iter_all_docs(cfg.db_name("models"))
    return {d["entity"]: d for d in docs if d.get("type") == "entity"}


def _heads(couch: CouchClient, cfg: Settings) -> dict[Any, int]:
    docs = couch.iter_all_docs(cfg.db_name("models"))
    return {d["entity"]: d["active_version"] for d in docs if d.get("type") == "model_head"}


@contextmanager
def fresh_system(
    couchdb: CouchServer, redis_service: RedisServer, tmp: Path, **overrides: Any
) -> Iterator[tuple[Settings, CouchClient, WorkerFleet]]:
    """Empty databases (schema only), an empty broker and one real worker."""
    redis.Redis.from_url(redis_service.url).flushdb()
    cfg = make_settings(couchdb, redis_service.url, **overrides)
    with (
        schema_couch(cfg) as couch,
        worker_fleet(cfg, settings_env(cfg), tmp / "logs", names=("w1",)) as fleet,
    ):
        yield cfg, couch, fleet


def test_train_all_on_a_fresh_deployment_trains_every_entity(
    couchdb: CouchServer, redis_service: RedisServer, tmp_path: Path
) -> None:
    with fresh_system(couchdb, redis_service, tmp_path) as (cfg, couch, fleet):
        path, events = _history(tmp_path)
        per_user = Counter(e["user_id"] for e in events)
        _ingest(cfg, path, len(events))

        done = _cli(cfg, "train", "--all", "--wait")
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"for {USERS} entities" in done.stdout, done.stdout
        print(f"\n[fresh train --all] {done.stdout.strip()}")
        assert _heads(couch, cfg) == dict.fromkeys(per_user, 1)
        trains = _runs(couch, cfg, TRAIN)
        assert trains and all(r["outcome"] == "succeeded" for r in trains), trains
        # the first models' history: every ingested event, counted per entity in the run records
        kept = {e: n for r in trains for e, n in r["details"].get("kept_as_history", {}).items()}
        assert kept == dict(per_user), kept
        assert sum(r["details"]["kept_as_history_events"] for r in trains) == len(events)
        registry = _registry(couch, cfg)
        assert {e: d.get("history_kept") for e, d in registry.items()} == dict(per_user)
        assert not [d for d in registry.values() if d.get("unscored_events")]
        assert not _runs(couch, cfg, SCORE)  # the history was not sent to scoring

        # events arriving afterwards (in a window of their own) are scored by the next
        # planning pass, and only they
        last = datetime.fromisoformat(max(e["timestamp"] for e in events).replace("Z", "+00:00"))
        base = last.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1, minutes=5)
        users = sorted(per_user)[:2]
        burst = [
            {
                **events[i],
                "_id": f"burst-{i}",
                "user_id": users[i % 2],
                "timestamp": (base + timedelta(seconds=30 * i)).isoformat(),
            }
            for i in range(10)
        ]
        (tmp_path / "burst.jsonl").write_text("".join(json.dumps(e) + "\n" for e in burst))
        _ingest(cfg, tmp_path / "burst.jsonl", len(burst))
        plan = wait_run(couch, cfg, fleet.app().send_task(PLAN, kwargs={"force": True}).id)
        assert plan["outcome"] == "succeeded" and plan["events_in"] == len(burst), plan
        (scored,) = [wait_run(couch, cfg, t) for t in plan["details"]["task_ids"]]
        assert scored["outcome"] == "succeeded" and scored["events_in"] == len(burst), scored
        print(
            f"[fresh train --all] {len(per_user)} entities trained, {len(events)} events kept "
            f"as history, burst of {len(burst)} scored ({scored['docs_out']} anomalies)"
        )


@pytest.mark.parametrize("score_history", [False, True], ids=["keep", "score"])
def test_events_planned_before_any_model_are_never_silently_skipped(
    couchdb: CouchServer, redis_service: RedisServer, tmp_path: Path, score_history: bool
) -> None:
    overrides = {"couchwatch_score_first_history": True} if score_history else {}
    with fresh_system(couchdb, redis_service, tmp_path, **overrides) as (cfg, couch, fleet):
        path, events = _history(tmp_path)
        per_user = Counter(e["user_id"] for e in events)
        _ingest(cfg, path, len(events))

        # beat's planner runs before anything is trained (no population, no model)
        plan = wait_run(couch, cfg, fleet.app().send_task(PLAN, kwargs={"force": True}).id)
        assert plan["outcome"] == "succeeded" and plan["events_in"] == len(events), plan
        waiting = plan["details"].get("unscored_deferred")
        assert waiting == {"entities": USERS, "events": len(events)}, plan["details"]
        registry = _registry(couch, cfg)
        assert {e: d.get("unscored_events") for e, d in registry.items()} == dict(per_user)
        assert plan["details"]["task_ids"] == []  # nothing to score them with: none enqueued
        # an operator asks for one entity's history to be scored: it waits too, counted once
        first = sorted(per_user)[0]
        asked = _cli(cfg, "score", "--entity", first, "--wait")
        assert asked.returncode == 0, asked.stdout + asked.stderr
        (waited,) = _runs(couch, cfg, SCORE)
        assert waited["outcome"] == "succeeded" and waited["details"]["awaiting_history"] == [first]
        assert waited["details"]["awaiting_history_events"] == per_user[first], waited
        registry = _registry(couch, cfg)
        assert {e: d.get("unscored_events") for e, d in registry.items()} == dict(per_user)

        done = _cli(cfg, "train", "--all", "--wait")
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"for {USERS} entities" in done.stdout, done.stdout
        print(f"\n[planned first, {'score' if score_history else 'keep'}] {done.stdout.strip()}")
        assert _heads(couch, cfg) == dict.fromkeys(per_user, 1)
        trains = _runs(couch, cfg, TRAIN)
        assert trains and all(r["outcome"] == "succeeded" for r in trains), trains
        registry = _registry(couch, cfg)
        assert not [d for d in registry.values() if d.get("unscored_events")], registry
        key = "unscored_enqueued" if score_history else "kept_as_history"
        said = {e: n for r in trains for e, n in r["details"].get(key, {}).items()}
        assert said == dict(per_user), [r["details"] for r in trains]
        scores = [r for r in _runs(couch, cfg, SCORE) if r["_id"] != waited["_id"]]
        anomalies = list(couch.iter_all_docs(cfg.db_name("anomalies")))
        if score_history:  # scored with the first models, waited for by `train --wait`
            assert scores and all(r["outcome"] == "succeeded" for r in scores), scores
            assert sum(r["events_in"] for r in scores) == len(events)
            assert not [r for r in scores if r["details"].get("awaiting_history")]
            assert anomalies and {a["entity"] for a in anomalies} <= set(per_user)
            assert all(a["model"]["version"] == 1 for a in anomalies)  # not cold-start (0)
        else:
            assert {e: d.get("history_kept") for e, d in registry.items()} == dict(per_user)
            assert not scores and not anomalies
        print(
            f"[planned first] {USERS} entities trained; {len(events)} events "
            f"{'scored' if score_history else 'kept as history'} "
            f"({sum(r['events_in'] for r in scores)} scored, {len(anomalies)} anomalies)"
        )
