"""A whole worker killed with SIGKILL (main process and pool children, its process group) while
it holds a training batch, on real processes (issue 13 item 5; docs/reliability.md).

Real redis-server, real PouchDB Server, two real `celery worker` processes (never eager), with
the production Celery settings: time limits, visibility timeout and worker heartbeat are the
defaults. Nobody is left to reject the message, so it stays in Redis's `unacked` hash; only the
surviving worker can bring it back. Before the fix that took the 3600 s visibility timeout.
"""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import pytest
import redis
from celery import Celery

from tests.conftest import settings_env
from tests.integration.test_fleet_resilience import _recent_demo, _services, _store
from tests.support.fleet import worker_fleet
from tests.support.services import CouchServer, RedisServer
from tests.support.waiting import wait_run
from workers.settings import Settings
from workers.store.models import head_id

pytestmark = pytest.mark.integration

TRAIN = "couchwatch.train_entities"
# Three missed heartbeats (30 s by default), the survivor's next sweep (<= 10 s) and the batch's
# own training time; the visibility timeout (780 s by default, 3600 s before) is far beyond.
BOUND_S = 90


def _holder(app: Celery, task_id: str, names: tuple[str, ...], timeout_s: float = 60) -> str:
    """The worker (`w1` or `w2`) running `task_id`, from the workers' own `inspect active`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        active = app.control.inspect(timeout=1.0).active() or {}
        for hostname, tasks in active.items():
            if any(t.get("id") == task_id for t in tasks):
                name = hostname.split("@", 1)[0]
                assert name in names, hostname
                return name
        time.sleep(0.2)
    raise AssertionError(f"no worker started {task_id} within {timeout_s}s")


def _received_again(log: Path, task_id: str) -> bool:
    return f"[{task_id}] received" in log.read_text(errors="replace")


def test_whole_worker_sigkill_is_requeued_to_the_other_worker_within_a_minute(
    couchdb: CouchServer, redis_service: RedisServer, tmp_path: Path
) -> None:
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    with _services(couchdb, redis_service, 11) as (settings, couch):
        for name in (
            "celery_task_soft_time_limit_s",
            "celery_task_time_limit_s",
            "celery_visibility_timeout_s",
            "couchwatch_worker_heartbeat_s",
        ):
            assert getattr(settings, name, None) == getattr(defaults, name, None), name
        scenario = _recent_demo(users=15, days=10)
        _store(couch, settings, scenario.events)
        users = sorted({e["user_id"] for e in scenario.events})
        broker = redis.Redis.from_url(settings.redis_url)
        logs = tmp_path / "logs"
        names = ("w1", "w2")
        with worker_fleet(settings, settings_env(settings), logs, names) as fleet:
            app = fleet.app()
            time.sleep(2)  # both workers past their first heartbeat
            task_id = app.send_task(TRAIN, args=[users]).id
            holder = _holder(app, task_id, names)
            other = next(n for n in names if n != holder)
            deadline = time.monotonic() + 60
            while not broker.keys("couchwatch:train-lock:*"):
                assert time.monotonic() < deadline, f"{holder} never started training"
                time.sleep(0.05)
            killed_at = time.monotonic()
            fleet.kill(holder, signal.SIGKILL)  # os.killpg: main process and pool children
            assert couch.get(settings.db_name("runs"), f"run-{task_id}") is None, (
                f"{holder} finished the batch before it was killed: make the batch bigger"
            )
            assert broker.hlen("unacked") == 1, "the batch is not waiting in `unacked`"

            other_log = logs / f"{other}.log"
            picked_up_s = None
            while time.monotonic() - killed_at < BOUND_S:
                if _received_again(other_log, task_id):
                    picked_up_s = time.monotonic() - killed_at
                    break
                time.sleep(0.2)
            assert picked_up_s is not None, (
                f"the batch of the killed worker was not requeued within {BOUND_S}s "
                f"(visibility timeout {settings.visibility_timeout_s}s)"
            )
            run = wait_run(couch, settings, task_id, timeout_s=BOUND_S - picked_up_s)
            finished_s = time.monotonic() - killed_at
            requeue_lines = [
                line
                for line in other_log.read_text(errors="replace").splitlines()
                if "missed its heartbeats" in line
            ]
            unacked_after = broker.hlen("unacked")

        assert run["outcome"] == "succeeded", run
        assert run["worker"] == f"{other}@testhost", run
        assert run["attempt"] == 1, run  # a redelivery, not a Celery retry
        assert len(requeue_lines) == 1, requeue_lines
        assert re.search(rf"{holder}@testhost\S* .*1 unacked message", requeue_lines[0])
        assert unacked_after == 0
        for user in users:
            head = couch.get(settings.db_name("models"), head_id(user))
            assert head is not None, user
            assert len(head["versions"]) == 1, (user, head["versions"])
        models = [
            d for d in couch.iter_all_docs(settings.db_name("models")) if d.get("type") == "model"
        ]
        assert len(models) == len(users)
        assert {m["request_id"] for m in models} == {task_id}
        print(
            f"\n[whole-worker kill -9] {holder} killed mid-batch ({len(users)} entities); "
            f"requeued and received by {other} {picked_up_s:.1f}s after the kill, batch "
            f"finished {finished_s:.1f}s after it (training {run['duration_s']:.1f}s); "
            f"visibility timeout {settings.visibility_timeout_s}s"
        )


def test_a_live_worker_busy_for_longer_than_the_heartbeat_ttl_keeps_its_batch(
    couchdb: CouchServer, redis_service: RedisServer, tmp_path: Path
) -> None:
    """The hazard of requeue on missed heartbeats is a false alarm: a busy worker declared dead
    and its batch run twice. Beats every 1 s (dead after 3 s), a batch that trains for longer,
    the other worker watching: nothing is requeued."""
    with _services(couchdb, redis_service, 12, couchwatch_worker_heartbeat_s=1) as (
        settings,
        couch,
    ):
        scenario = _recent_demo(users=30, days=10, seed=9)
        _store(couch, settings, scenario.events)
        users = sorted({e["user_id"] for e in scenario.events})
        logs = tmp_path / "logs"
        names = ("w1", "w2")
        with worker_fleet(settings, settings_env(settings), logs, names) as fleet:
            app = fleet.app()
            time.sleep(4)  # both past their first three beats: either could requeue
            task_id = app.send_task(TRAIN, args=[users]).id
            holder = _holder(app, task_id, names)
            run = wait_run(couch, settings, task_id, timeout_s=180)
            time.sleep(2)
            texts = {n: (logs / f"{n}.log").read_text(errors="replace") for n in names}

        assert run["outcome"] == "succeeded", run
        assert run["worker"] == f"{holder}@testhost", run
        assert run["duration_s"] > 2 * 3, f"the batch was too quick to test anything: {run}"
        assert sum(t.count(f"[{task_id}] received") for t in texts.values()) == 1
        assert not any("missed its heartbeats" in t for t in texts.values())
        heads = [couch.get(settings.db_name("models"), head_id(u)) for u in users]
        assert all(h is not None and len(h["versions"]) == 1 for h in heads)
        print(
            f"\n[busy worker] {holder} trained {len(users)} entities for "
            f"{run['duration_s']:.1f}s with heartbeats every 1 s (dead after 3 s): "
            f"received once, nothing requeued"
        )
