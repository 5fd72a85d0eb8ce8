"""Faults survived by the fleet, on real processes (issue 7, "Faults"; results in
docs/reliability.md): CouchDB down mid-run, Redis restarted mid-run, a worker stopped with SIGTERM
mid-batch, a poison entity, a replayed `_changes` page, a short soak, and no credential in any log
or run record afterwards.

Real PouchDB Server, real redis-server, real `celery worker` / `celery beat` processes (never
eager). Outage tests stop a server of their own (never the session's). A worker `kill -9`ed
mid-batch is covered in `test_fleet_resilience.py` (`test_kill_9_mid_training_redelivers_...`,
the visibility-timeout backstop) and `test_worker_lost.py` (the heartbeat requeue).
Each test ends with every expected model and anomaly present exactly once.

`COUCHWATCH_SOAK_S` sets the soak's length (default 60 s; `make soak` runs 1200 s).
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.conftest import settings_env
from tests.integration.test_fleet_resilience import (
    _beat,
    _new_window_events,
    _recent_demo,
    _runs,
    _services,
    _store,
    _wait_runs,
)
from tests.support.fleet import poison_fit_env, worker_fleet
from tests.support.services import (
    CouchServer,
    RedisServer,
    couch_server,
    redis_server,
    terminate,
)
from workers.couch.client import CouchClient
from workers.settings import Settings
from workers.store.models import head_id
from workers.store.registry import registry_id

pytestmark = pytest.mark.integration

REDIS_PASSWORD = "redis-pw-5b91c"  # the dedicated Redis servers below require it
TRAIN, SCORE, PLAN = (
    "couchwatch.train_entities",
    "couchwatch.score_entities",
    "couchwatch.plan_scoring",
)
SOAK_S = float(os.environ.get("COUCHWATCH_SOAK_S", "60"))

# every log directory and run record seen by this module, grepped for secrets at the end
_ARTIFACTS: list[tuple[Path, list[dict[str, Any]], tuple[str, ...]]] = []


# --- helpers -------------------------------------------------------------------------------


def _users(events: list[dict[str, Any]]) -> list[str]:
    return sorted({e["user_id"] for e in events})


def _docs(couch: CouchClient, settings: Settings, suffix: str, kind: str) -> list[dict[str, Any]]:
    return [d for d in couch.iter_all_docs(settings.db_name(suffix)) if d.get("type") == kind]


def _assert_models_once(couch: CouchClient, settings: Settings, users: list[str]) -> None:
    """One model version per entity: no retry or redelivery trained anybody twice."""
    for user in users:
        head = couch.get(settings.db_name("models"), head_id(user))
        assert head is not None, f"no model for {user}"
        assert [v["version"] for v in head["versions"]] == [1], (user, head["versions"])
    per_entity = Counter(m["entity"] for m in _docs(couch, settings, "models", "model"))
    assert {u: per_entity[u] for u in users} == dict.fromkeys(users, 1), per_entity


def _assert_anomalies_once(couch: CouchClient, settings: Settings) -> list[dict[str, Any]]:
    """Each (entity, detector, window or event) is one anomaly document, never two."""
    docs = _docs(couch, settings, "anomalies", "anomaly")
    keys = Counter(
        (d["entity"], d["detector"], d["window_start"], tuple(d["event_ids"])) for d in docs
    )
    assert all(n == 1 for n in keys.values()), [k for k, n in keys.items() if n > 1]
    windows = Counter(
        (d["entity"], d["detector"], d["window_start"]) for d in docs if d["detector"] != "login"
    )
    assert all(n == 1 for n in windows.values()), [k for k, n in windows.items() if n > 1]
    return docs


def _seen(couch: CouchClient, settings: Settings) -> int:
    """Events counted by the planner over all entities (registry `events_seen`)."""
    return sum(d["events_seen"] for d in _docs(couch, settings, "models", "entity"))


def _all_runs(couch: CouchClient, settings: Settings) -> list[dict[str, Any]]:
    return list(couch.iter_all_docs(settings.db_name("runs")))


def _record(logs: Path, couch: CouchClient, settings: Settings) -> None:
    """Keep this test's logs and run records for the secrets check, and check them now."""
    secrets = [settings.couchdb_password.get_secret_value()] if settings.couchdb_password else []
    if "@" in settings.redis_url:
        secrets.append(REDIS_PASSWORD)
    _ARTIFACTS.append((logs, _all_runs(couch, settings), tuple(secrets)))
    _assert_no_secrets(*_ARTIFACTS[-1])


def _assert_no_secrets(logs: Path, runs: list[dict[str, Any]], secrets: tuple[str, ...]) -> None:
    files = sorted(p for p in logs.rglob("*.log"))
    assert files, f"no log files under {logs}"
    assert runs, "no run records"
    for secret in secrets:
        for path in files:
            assert secret not in path.read_text(errors="replace"), f"{secret!r} in {path}"
        leaked = [r["_id"] for r in runs if secret in repr(r)]
        assert not leaked, f"{secret!r} in run records {leaked}"


def _retries_in_logs(logs: Path) -> list[tuple[str, float, str]]:
    """(task name, countdown s, exception) of every `Retry in Ns` line in the worker logs."""
    pattern = re.compile(
        r"Task (couchwatch\.\w+)\[[^\]]+\] retry: Retry in (\d+(?:\.\d+)?)s: (\w+)"
    )
    found = []
    for path in sorted(logs.glob("*.log")):
        found += [(m[1], float(m[2]), m[3]) for m in pattern.finditer(path.read_text())]
    return found


def _wait_until(what: str, check: Any, timeout_s: float, every_s: float = 0.3) -> float:
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < timeout_s, f"{what} not within {timeout_s}s"
        time.sleep(every_s)
    return time.monotonic() - start


def _group_rss_kb(pgid: int) -> int:
    """Resident memory of every process in the process group (worker main + pool children)."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[2]) != pgid:
                continue
            status = (entry / "status").read_text()
        except (OSError, IndexError, ValueError):
            continue
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        total += int(match[1]) if match else 0
    return total


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A password-protected, append-only Redis this test may restart."""
    with redis_server(tmp_path / "redis", appendonly=True, password=REDIS_PASSWORD) as server:
        yield server


# --- 1. CouchDB down mid-run ---------------------------------------------------------------


def test_couchdb_down_30s_mid_run_retries_and_completes(
    redis_service: RedisServer, tmp_path: Path
) -> None:
    outage_s = 30
    logs = tmp_path / "logs"
    with (
        couch_server(tmp_path / "couch") as server,
        _services(server, redis_service, 5, couchwatch_batch_size=3) as (settings, couch),
    ):
        scenario = _recent_demo(users=9, days=8, seed=21)
        users = _users(scenario.events)
        _store(couch, settings, scenario.events)
        with worker_fleet(settings, settings_env(settings), logs) as fleet:
            app = fleet.app()
            app.send_task(PLAN, kwargs={"force": True})
            (first,) = _wait_runs(couch, settings, PLAN, 1, timeout_s=120)
            _wait_runs(couch, settings, SCORE, first["docs_out"], timeout_s=120)
            broker = redis.Redis.from_url(settings.redis_url)

            # training (3 batches) and a scoring pass of new events in flight when CouchDB dies
            new = _new_window_events(scenario, {u: 3 for u in users[:4]})
            _store(couch, settings, new)
            app.send_task("couchwatch.plan_training", kwargs={"force": True})
            _wait_until("training start", lambda: broker.keys("couchwatch:train-lock:*"), 90, 0.05)
            app.send_task(PLAN, kwargs={"force": True})
            server.stop()
            down_at = time.monotonic()
            time.sleep(outage_s)
            server.start_again()
            up_at = time.monotonic()

            trains = _wait_runs(couch, settings, TRAIN, 3, timeout_s=240)
            plans = _wait_runs(couch, settings, PLAN, 2, timeout_s=240)
            second = next(p for p in plans if p["_id"] != first["_id"])
            scores = _wait_runs(
                couch, settings, SCORE, first["docs_out"] + second["docs_out"], timeout_s=240
            )
            recovered_s = time.monotonic() - up_at

        assert all(r["outcome"] == "succeeded" for r in trains + plans + scores), [
            (r["task"], r["outcome"], r["error"]) for r in trains + plans + scores
        ]
        retried = [r for r in trains + plans + scores if r["attempt"] > 1]
        assert retried, "no task was retried: did the outage hit a running task?"
        retries = _retries_in_logs(logs)
        assert retries and {e for _, _, e in retries} <= {"CouchUnavailable", "CouchServerError"}
        # the checkpoint skipped nothing: both passes together read every stored event once
        assert first["events_in"] + second["events_in"] == len(scenario.events) + len(new)
        registry = _docs(couch, settings, "models", "entity")
        assert sum(d["events_seen"] for d in registry) == len(scenario.events) + len(new)
        _assert_models_once(couch, settings, users)
        _assert_anomalies_once(couch, settings)
        _record(logs, couch, settings)
        print(
            f"\n[couch-outage] down {up_at - down_at:.1f}s, {len(retries)} task retries "
            f"(countdowns {sorted(c for _, c, _ in retries)}), max attempt "
            f"{max(r['attempt'] for r in retried)}, all runs terminal {recovered_s:.1f}s after "
            f"CouchDB returned"
        )


# --- 2. Redis restarted mid-run ------------------------------------------------------------


def test_redis_restart_mid_run_reconnects_and_loses_nothing(
    couchdb: CouchServer, own_redis: RedisServer, tmp_path: Path
) -> None:
    logs = tmp_path / "logs"
    with _services(
        couchdb,
        own_redis,
        0,
        couchwatch_batch_size=2,
        couchwatch_score_interval_s=3,
        celery_visibility_timeout_s=30,
        celery_task_soft_time_limit_s=20,
        celery_task_time_limit_s=25,
    ) as (settings, couch):
        scenario = _recent_demo(users=8, days=6, seed=23)
        users = _users(scenario.events)
        _store(couch, settings, scenario.events)
        env = {**os.environ, **settings_env(settings)}
        broker = redis.Redis.from_url(settings.redis_url)
        with worker_fleet(settings, settings_env(settings), logs, ("w1",)) as fleet:
            beat = _beat(env, tmp_path / "beat.db", logs / "beat.log")
            try:
                _wait_runs(
                    couch,
                    settings,
                    PLAN,
                    1,
                    timeout_s=60,
                    where=lambda r: "skipped" not in r["details"],
                )
                # four training batches for one worker: three wait in the queue
                fleet.app().send_task("couchwatch.plan_training", kwargs={"force": True})
                _wait_until(
                    "training start", lambda: broker.keys("couchwatch:train-lock:*"), 90, 0.05
                )
                queued = broker.llen("train")
                own_redis.stop()
                time.sleep(5)
                own_redis.start_again()
                restarted = time.monotonic()
                assert broker.llen("train") + 1 >= queued, "queued messages lost on restart"

                trains = _wait_runs(couch, settings, TRAIN, 4, timeout_s=180)
                trained_s = time.monotonic() - restarted
                # beat and worker reconnected: new events are planned and scored by themselves
                new = _new_window_events(scenario, {users[0]: 3, users[5]: 2})
                _store(couch, settings, new)
                stored_at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
                plan = _wait_runs(
                    couch,
                    settings,
                    PLAN,
                    1,
                    timeout_s=90,
                    where=lambda r: r["events_in"] == len(new) and r["started_at"] >= stored_at,
                )
                planned = {f"run-{t}" for t in plan[0]["details"]["task_ids"]}
                _wait_runs(
                    couch, settings, SCORE, 1, timeout_s=90, where=lambda r: r["_id"] in planned
                )
            finally:
                terminate(beat, grace_s=20)
        assert all(r["outcome"] == "succeeded" for r in trains), [
            (r["outcome"], r["error"]) for r in trains
        ]
        assert sorted(u for r in trains for u in r["entities"]) == users
        _assert_models_once(couch, settings, users)
        _assert_anomalies_once(couch, settings)
        registry = _docs(couch, settings, "models", "entity")
        assert sum(d["events_seen"] for d in registry) == len(scenario.events) + len(new)
        log_text = (logs / "w1.log").read_text() + (logs / "beat.log").read_text()
        _record(logs, couch, settings)
        print(
            f"\n[redis-restart] {queued} queued at restart; all {len(trains)} training batches "
            f"done {trained_s:.1f}s after restart; worker/beat reconnect lines: "
            f"{log_text.count('Connection to broker lost') + log_text.count('Cannot connect')}"
        )


# --- 3. SIGTERM mid-batch ------------------------------------------------------------------


def test_sigterm_mid_batch_warm_shutdown_completes_batch(
    couchdb: CouchServer, redis_service: RedisServer, tmp_path: Path
) -> None:
    logs = tmp_path / "logs"
    with _services(couchdb, redis_service, 6) as (settings, couch):
        scenario = _recent_demo(users=12, days=10, seed=31)
        users = _users(scenario.events)
        _store(couch, settings, scenario.events)
        broker = redis.Redis.from_url(settings.redis_url)
        with worker_fleet(settings, settings_env(settings), logs, ("w1", "w2")) as fleet:
            task_id = fleet.app().send_task(TRAIN, args=[users]).id
            _wait_until("training start", lambda: broker.keys("couchwatch:train-lock:*"), 90, 0.05)

            def holders() -> list[str]:
                return [n for n in fleet.processes if task_id in (logs / f"{n}.log").read_text()]

            _wait_until("task received", holders, 30)
            holder = holders()[0]
            proc = fleet.processes[holder]
            termed = time.monotonic()
            os.kill(proc.pid, signal.SIGTERM)  # the main process only: warm shutdown
            exit_code = proc.wait(timeout=240)
            shutdown_s = time.monotonic() - termed
            (run,) = _wait_runs(couch, settings, TRAIN, 1, timeout_s=120)

        assert exit_code == 0, exit_code
        assert run["_id"] == f"run-{task_id}"
        assert run["outcome"] == "succeeded", run
        assert run["worker"] == f"{holder}@testhost", "warm shutdown did not finish the task"
        assert run["details"].get("skipped_locked") is None
        _assert_models_once(couch, settings, users)
        _record(logs, couch, settings)
        print(
            f"\n[sigterm] {holder} finished its batch of {len(users)} and exited 0 in "
            f"{shutdown_s:.1f}s after SIGTERM"
        )


# --- 4. a poison entity --------------------------------------------------------------------


def test_poison_entity_is_recorded_bounded_and_isolated(
    couchdb: CouchServer, redis_service: RedisServer, tmp_path: Path
) -> None:
    logs = tmp_path / "logs"
    with _services(
        couchdb,
        redis_service,
        7,
        celery_visibility_timeout_s=15,
        celery_task_soft_time_limit_s=10,
        celery_task_time_limit_s=12,
        couchwatch_train_check_interval_s=2,
        couchwatch_train_pending_ttl_s=15,
    ) as (settings, couch):
        scenario = _recent_demo(users=6, days=6, seed=41)
        users = _users(scenario.events)
        # valid events whose model cannot be fitted. Since numbers are bounded at validation
        # (±2^53), no schema-valid value overflows the features any more, so the workers get a
        # fit that raises for this one entity (tests/support/poison_fit/sitecustomize.py)
        template = [e for e in scenario.events if e["user_id"] == users[0]]
        poison = [{**e, "_id": f"poison-{i}", "user_id": "poison"} for i, e in enumerate(template)]
        _store(couch, settings, scenario.events + poison)
        env = {**settings_env(settings), **poison_fit_env("poison")}
        with worker_fleet(settings, env, logs) as fleet:
            app = fleet.app()
            app.send_task(PLAN, kwargs={"force": True})
            (plan,) = _wait_runs(couch, settings, PLAN, 1, timeout_s=90)
            assert plan["details"]["quarantined"] == 0  # the poison events are valid events
            _wait_runs(couch, settings, SCORE, plan["docs_out"], timeout_s=90)

            # planned as beat plans it (not forced; each call in its own 2 s schedule slot)
            app.send_task("couchwatch.plan_training")
            (train,) = _wait_runs(couch, settings, TRAIN, 1, timeout_s=120)
            # planned again soon: the poison entity is still pending, nothing is enqueued
            time.sleep(2.5)
            app.send_task("couchwatch.plan_training")
            plans_t = _wait_runs(couch, settings, "couchwatch.plan_training", 2, timeout_s=60)
            # after the pending marker expires (COUCHWATCH_TRAIN_PENDING_TTL_S) it is retried
            time.sleep(settings.couchwatch_train_pending_ttl_s + 1)
            app.send_task("couchwatch.plan_training")
            plans_t = _wait_runs(couch, settings, "couchwatch.plan_training", 3, timeout_s=60)
            trains = _wait_runs(couch, settings, TRAIN, 2, timeout_s=120)

            # the fleet carries on: new events of a healthy entity are scored
            new = _new_window_events(scenario, {users[1]: 3})
            _store(couch, settings, new)
            app.send_task(PLAN, kwargs={"force": True})
            plans = _wait_runs(couch, settings, PLAN, 2, timeout_s=90)
            later = next(p for p in plans if p["_id"] != plan["_id"])
            scored = _wait_runs(couch, settings, SCORE, plan["docs_out"] + 1, timeout_s=90)

        assert train["outcome"] == "partial", train
        assert list(train["entity_errors"]) == ["poison"], train["entity_errors"]
        assert "ValueError" in train["entity_errors"]["poison"]
        entry = couch.get(settings.db_name("models"), registry_id("poison"))
        assert entry is not None and entry["train_failures"] >= 1
        assert "ValueError" in entry["last_train_error"]
        assert sorted(train["details"]["versions"]) == users
        entities_planned = sorted(p["details"]["entities"] for p in plans_t)
        assert entities_planned == [0, 1, 7], entities_planned  # all, none, the poison alone
        retry = next(t for t in trains if t["_id"] != train["_id"])
        assert retry["entities"] == ["poison"] and retry["outcome"] == "failed", retry
        assert later["events_in"] == len(new)
        assert all(r["outcome"] in ("succeeded", "partial") for r in scored), scored
        assert not any(u in r["entity_errors"] for r in scored for u in users)
        _assert_models_once(couch, settings, users)
        assert couch.get(settings.db_name("models"), head_id("poison")) is None
        _assert_anomalies_once(couch, settings)
        _record(logs, couch, settings)
        window = settings.couchwatch_train_pending_ttl_s + 10
        print(
            f"\n[poison] error recorded: {train['entity_errors']['poison'][:90]}; training "
            f"attempts for the poison entity: {len(trains)} in ~{window}s "
            f"(one per pending-marker TTL)"
        )


# --- 5. a replayed _changes page -----------------------------------------------------------


def test_replayed_changes_page_doubles_nothing(
    couchdb: CouchServer, redis_service: RedisServer, tmp_path: Path
) -> None:
    from scheduler.planning import CHECKPOINT

    logs = tmp_path / "logs"
    with _services(couchdb, redis_service, 8) as (settings, couch):
        scenario = _recent_demo(users=6, days=8, seed=51)
        users = _users(scenario.events)
        _store(couch, settings, scenario.events)
        with worker_fleet(settings, settings_env(settings), logs) as fleet:
            app = fleet.app()
            app.send_task(PLAN, kwargs={"force": True})
            (p1,) = _wait_runs(couch, settings, PLAN, 1, timeout_s=90)
            n_scores = p1["docs_out"]
            _wait_runs(couch, settings, SCORE, n_scores, timeout_s=90)
            old = couch.get_local(settings.events_db, CHECKPOINT)
            assert old is not None
            app.send_task("couchwatch.plan_training", kwargs={"force": True})
            _wait_runs(couch, settings, TRAIN, 1, timeout_s=120)

            fresh = _new_window_events(scenario, {u: 20 for u in users[:2]})
            burst = [
                {**e, "ip_address": f"203.0.113.{i}", "country": "KP", "city": "Pyongyang"}
                for i, e in enumerate(fresh)
            ]
            _store(couch, settings, burst)
            app.send_task(PLAN, kwargs={"force": True})
            plans = _wait_runs(couch, settings, PLAN, 2, timeout_s=90)
            n_scores += sum(p["docs_out"] for p in plans if p["_id"] != p1["_id"])
            _wait_runs(couch, settings, SCORE, n_scores, timeout_s=90)
            before = {d["_id"]: d for d in _assert_anomalies_once(couch, settings)}
            assert before, "the burst raised no anomaly: nothing to double"

            # the checkpoint goes back to before the burst; the same page is read again
            current = couch.get_local(settings.events_db, CHECKPOINT)
            assert current is not None and current["seq"] != old["seq"]
            couch.put_local(settings.events_db, CHECKPOINT, {"seq": old["seq"], "at": old["at"]})
            app.send_task(PLAN, kwargs={"force": True})
            plans = _wait_runs(couch, settings, PLAN, 3, timeout_s=90)
            replay = max(plans, key=lambda p: p["finished_at"])
            n_scores += replay["docs_out"]
            _wait_runs(couch, settings, SCORE, n_scores, timeout_s=90)

        assert replay["events_in"] == len(burst)
        after = {d["_id"]: d for d in _assert_anomalies_once(couch, settings)}
        assert sorted(after) == sorted(before)
        assert all(after[i]["created_at"] == before[i]["created_at"] for i in before)
        _assert_models_once(couch, settings, users)
        registry = {d["entity"]: d for d in _docs(couch, settings, "models", "entity")}
        replayed = Counter(e["user_id"] for e in burst)
        _record(logs, couch, settings)
        stored = sum(1 for e in scenario.events if e["user_id"] == users[0]) + replayed[users[0]]
        for user in users:  # the replayed range is not counted twice
            stored_for = sum(1 for e in scenario.events if e["user_id"] == user) + replayed[user]
            assert registry[user]["events_seen"] == stored_for, user
        print(
            f"\n[replay] {len(burst)} events replayed: {len(after)} anomalies before and after; "
            f"registry events_seen of a replayed entity: {registry[users[0]]['events_seen']} "
            f"(stored {stored})"
        )


# --- 6. soak ---------------------------------------------------------------------------------


def test_soak_steady_ingest_bounded_queue_memory_keys(
    couchdb: CouchServer, own_redis: RedisServer, tmp_path: Path
) -> None:
    logs = tmp_path / "logs"
    rate_per_s, interval_s = 10, 3.0
    with _services(couchdb, own_redis, 0, couchwatch_score_interval_s=interval_s) as (
        settings,
        couch,
    ):
        scenario = _recent_demo(users=10, days=5, seed=61)
        users = _users(scenario.events)
        _store(couch, settings, scenario.events)
        broker = redis.Redis.from_url(settings.redis_url)
        env = {**os.environ, **settings_env(settings)}
        with worker_fleet(settings, settings_env(settings), logs) as fleet:
            app = fleet.app()
            app.send_task(PLAN, kwargs={"force": True})
            (first,) = _wait_runs(couch, settings, PLAN, 1, timeout_s=90)
            app.send_task("couchwatch.plan_training", kwargs={"force": True})
            _wait_runs(couch, settings, TRAIN, 1, timeout_s=180)
            _wait_runs(couch, settings, SCORE, first["docs_out"], timeout_s=90)

            beat = _beat(env, tmp_path / "beat.db", logs / "beat.log")
            template = {u: [e for e in scenario.events if e["user_id"] == u][-1] for u in users}
            samples: list[tuple[float, int, int, int]] = []  # (t, LLEN score, DBSIZE, RSS kB)
            ingested, started = 0, time.monotonic()
            try:
                while (elapsed := time.monotonic() - started) < SOAK_S:
                    batch = [
                        {
                            **template[users[(ingested + i) % len(users)]],
                            "_id": f"soak-{ingested + i}",
                            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
                        }
                        for i in range(rate_per_s)
                    ]
                    _store(couch, settings, batch)
                    ingested += len(batch)
                    rss = sum(_group_rss_kb(p.pid) for p in fleet.processes.values())
                    samples.append((elapsed, broker.llen("score"), broker.dbsize(), rss))
                    time.sleep(max(0.0, 1.0 - (time.monotonic() - started - elapsed)))
                # let the last pass plan and score what was ingested
                total = len(scenario.events) + ingested
                _wait_until("every event planned", lambda: _seen(couch, settings) >= total, 90, 1)
            finally:
                terminate(beat, grace_s=20)
            plans = [r for r in _runs(couch, settings, PLAN) if "skipped" not in r["details"]]
            enqueued = {f"run-{t}" for p in plans for t in p["details"]["task_ids"]}
            _wait_until(
                "every scoring batch done",
                lambda: enqueued <= {r["_id"] for r in _runs(couch, settings, SCORE)},
                90,
                1,
            )

        scores = [r for r in _runs(couch, settings, SCORE) if r["_id"] in enqueued]
        assert all(r["outcome"] == "succeeded" for r in scores), [
            (r["outcome"], r["entity_errors"]) for r in scores if r["outcome"] != "succeeded"
        ]
        registry = _docs(couch, settings, "models", "entity")
        assert sum(d["events_seen"] for d in registry) == total
        assert sum(p["events_in"] for p in plans) == total
        warm = [s for s in samples if s[0] >= min(15.0, SOAK_S / 4)]
        llen = max(s[1] for s in samples)
        keys = max(s[2] for s in samples)
        rss0, rss_max = warm[0][3], max(s[3] for s in warm)
        assert llen <= 5, f"score queue grew to {llen}"
        assert keys <= 100, f"Redis grew to {keys} keys"
        assert rss_max <= rss0 * 1.5 + 100_000, f"worker RSS grew from {rss0} to {rss_max} kB"
        _assert_models_once(couch, settings, users)
        _assert_anomalies_once(couch, settings)
        _record(logs, couch, settings)
        print(
            f"\n[soak] {SOAK_S:.0f}s, {ingested} events at {rate_per_s}/s, {len(plans)} planning "
            f"passes, {len(scores)} scoring batches; max LLEN score {llen}, max keys {keys}, "
            f"worker RSS {rss0 // 1024}→{rss_max // 1024} MB (max, both workers)"
        )


# --- 7. secrets ------------------------------------------------------------------------------


def test_no_secret_in_any_log_or_run_record() -> None:
    """After the runs above: no CouchDB or Redis password in a worker/beat log or run record."""
    assert _ARTIFACTS, "run the whole module: this test checks what the others left behind"
    for logs, runs, secrets in _ARTIFACTS:
        assert secrets, "nothing to look for"
        _assert_no_secrets(logs, runs, secrets)
    redis_runs = [a for a in _ARTIFACTS if REDIS_PASSWORD in a[2]]
    print(
        f"\n[secrets] {sum(len(list(a[0].rglob('*.log'))) for a in _ARTIFACTS)} log files, "
        f"{sum(len(a[1]) for a in _ARTIFACTS)} run records clean "
        f"({len(redis_runs)} tests on a password-protected Redis)"
    )
