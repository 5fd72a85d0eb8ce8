"""Fleet end-to-end on the demo scenario vs the store floor; task overhead; model sizes; latency.

Timeline (one stack, two real workers): history (70% of events, by time) is stored; the fleet
plans scoring (registry), plans and runs training; the next 20% arrives and one scoring pass
scores it. The store floor reads the same per-entity ranges with the same query. Then beat runs
with scoring every N seconds while the last 10% is written in chunks; the latency is the time
from an event's write to the first appearance of an anomaly document that contains it.
"""

from __future__ import annotations

import statistics
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

from bench import data
from bench.profiling import profiled
from bench.stack import Doc, Services, Stack, beat, planned, stack, store, warm_index, worker_peaks
from bench.storefloor import Query, read_floor
from workers import scoring, training
from workers.events import canonical_timestamp
from workers.fleet import Fleet
from workers.ids import Entity
from workers.scoring import window_floor
from workers.store.events import utc_now
from workers.store.runs import Run

FIELD = "user_id"


def _earliest(events: list[Doc]) -> dict[str, str]:
    first: dict[str, str] = {}
    for e in events:
        entity = str(e[FIELD])
        if entity not in first or e["timestamp"] < first[entity]:
            first[entity] = e["timestamp"]
    return first


def task_overhead(*phases: list[Doc]) -> dict[str, Any]:
    """Per phase and worker: busy span (first task start → last task end) vs summed task body
    durations. Phases are measured apart so the idle time between them is not counted."""
    span = body = 0.0
    tasks = 0
    workers: set[str] = set()
    for runs in phases:
        by_worker: dict[str, list[Doc]] = {}
        for r in runs:
            by_worker.setdefault(r.get("worker", "?"), []).append(r)
        for worker, docs in by_worker.items():
            starts = [np.datetime64(d["started_at"].rstrip("Z")) for d in docs]
            ends = [np.datetime64(d["finished_at"].rstrip("Z")) for d in docs]
            span += float((max(ends) - min(starts)) / np.timedelta64(1, "ms")) / 1000
            body += sum(float(d["duration_s"]) for d in docs)
            tasks += len(docs)
            workers.add(worker)
    share = max(0.0, 1 - body / span) if span > 0 else 0.0
    return {
        "tasks": tasks,
        "workers": len(workers),
        "busy_span_s": span,
        "body_s": body,
        "overhead_share": share,
        "target": "<= 10% of worker busy time",
        "met": share <= 0.10,
    }


def fleet_pass_runs(st: Stack, queries_a: list[Query]) -> tuple[float, list[Doc], Doc]:
    """plan_scoring (registry) then plan_training + training; (wall, train runs, plan run)."""
    start = time.perf_counter()
    plan, _ = planned(st, "couchwatch.plan_scoring", force=True)
    _, train_runs = planned(st, "couchwatch.plan_training", force=True)
    return time.perf_counter() - start, train_runs, plan


def model_sizes(st: Stack) -> dict[str, Any]:
    sizes = [
        int(d["size_bytes"])
        for d in st.couch.iter_all_docs(st.settings.db_name("models"))
        if d.get("type") == "model" and "size_bytes" in d
    ]
    if not sizes:
        return {"models": 0, "median_bytes": None, "p99_bytes": None}
    return {
        "models": len(sizes),
        "median_bytes": float(statistics.median(sizes)),
        "p99_bytes": float(np.percentile(sizes, 99)),
        "max_bytes": max(sizes),
    }


def run(
    svc: Services,
    users: int,
    days: int,
    *,
    batch_size: int,
    interval_s: float,
    chunks: int,
    profile_dir: Path | None = None,
) -> dict[str, Any]:
    scenario = data.demo(users, days)
    history, fresh, late = data.split_by_time(scenario.events, 0.7, 0.9)
    with stack(
        svc, "e2e", couchwatch_batch_size=batch_size, couchwatch_score_interval_s=interval_s
    ) as st:
        store(st, history)
        warm_index(st, str(history[0][FIELD]))
        entities = sorted({str(e[FIELD]) for e in history})
        since = canonical_timestamp(utc_now() - timedelta(days=st.settings.couchwatch_history_days))
        floor_a = read_floor(st.settings, [(e, since) for e in entities])
        t1, train_runs, plan1 = fleet_pass_runs(st, [])
        store(st, fresh)
        warm_index(st, str(fresh[0][FIELD]))
        queries_b: list[Query] = [
            (e, window_floor(ts, st.settings.couchwatch_window))
            for e, ts in sorted(_earliest(fresh).items())
        ]
        floor_b = read_floor(st.settings, queries_b)
        start = time.perf_counter()
        plan2, score_runs = planned(st, "couchwatch.plan_scoring", force=True)
        t2 = time.perf_counter() - start
        floor_s = floor_a["seconds"] + floor_b["seconds"]
        fleet_s = t1 + t2
        e2e = {
            "server": svc.server,
            "entities": len(entities),
            "events": len(history) + len(fresh),
            "history_events": len(history),
            "new_events_scored": len(fresh),
            "batch_size": batch_size,
            "workers": 2,
            "fleet_seconds": fleet_s,
            "fleet_train_phase_s": t1,
            "fleet_score_phase_s": t2,
            "floor_seconds": floor_s,
            "floor_events_read": floor_a["events"] + floor_b["events"],
            "floor_readers": floor_a["readers"],
            "ratio_to_floor": fleet_s / floor_s,
            "target": "<= 1.25x store floor",
            "met": fleet_s / floor_s <= 1.25,
            "plan_scoring_s": [plan1["duration_s"], plan2["duration_s"]],
        }
        overhead = task_overhead(train_runs, score_runs)
        overhead["batch_size"] = batch_size
        sizes = model_sizes(st)
        peaks = worker_peaks(st)
        latency = alert_latency(st, late, interval_s, chunks)
        profile = None
        if profile_dir is not None:
            profile = profiled(profile_dir, "fleet", _in_process, st, entities[:10], queries_b)
    return {
        "profile": profile,
        "e2e": e2e,
        "overhead": overhead,
        "model_size_demo": sizes,
        "rss_demo": {k: max(v) if v else None for k, v in peaks.items()},
        "latency": latency,
    }


class _AnomalyWatcher(threading.Thread):
    """Polls the anomalies `_changes` feed; remembers when each anomaly id was first seen."""

    def __init__(self, st: Stack) -> None:
        super().__init__(daemon=True)
        self.st, self.stop = st, threading.Event()
        self.seen: dict[str, tuple[float, list[str]]] = {}
        db = st.settings.db_name("anomalies")
        since = "0"
        while True:  # skip what is there already
            page = st.couch.changes(db, since=since, limit=1000, include_docs=False)
            if not page.results:
                break
            since = page.last_seq
            for change in page.results:
                self.seen[change["id"]] = (0.0, [])
        self.since, self.db = since, db

    def run(self) -> None:
        while not self.stop.is_set():
            page = self.st.couch.changes(self.db, since=self.since, limit=1000)
            now = time.monotonic()
            for change in page.results:
                if change["id"] not in self.seen and not change.get("deleted"):
                    self.seen[change["id"]] = (
                        now,
                        list((change.get("doc") or {}).get("event_ids", [])),
                    )
            self.since = page.last_seq
            if not page.results:
                time.sleep(0.2)


def alert_latency(st: Stack, late: list[Doc], interval_s: float, chunks: int) -> dict[str, Any]:
    written: dict[str, float] = {}
    parts = [late[i::chunks] for i in range(chunks)]  # interleaved: every chunk spans entities
    parts = [sorted(p, key=lambda e: e["timestamp"]) for p in parts]
    watcher = _AnomalyWatcher(st)
    watcher.start()
    with beat(st):
        for part in parts:
            time.sleep(interval_s * 0.75)
            store(st, part)
            at = time.monotonic()
            written.update({str(e["_id"]): at for e in part})
        time.sleep(interval_s * 2 + 5)
    watcher.stop.set()
    watcher.join(timeout=10)
    latencies = []
    for seen_at, ids in watcher.seen.values():
        times = [written[i] for i in ids if i in written and written[i] <= seen_at]
        if times:
            latencies.append(seen_at - max(times))
    p95 = float(np.percentile(latencies, 95)) if latencies else None
    return {
        "interval_s": interval_s,
        "writes": chunks,
        "events": len(late),
        "anomalies": len(latencies),
        "p50_s": float(np.percentile(latencies, 50)) if latencies else None,
        "p95_s": p95,
        "max_s": max(latencies) if latencies else None,
        "target": f"p95 <= N + 5 s = {interval_s + 5:g} s",
        "met": p95 is not None and p95 <= interval_s + 5,
    }


def _in_process(st: Stack, entities: list[Entity], queries: list[Query]) -> None:
    """What a worker does for a batch (train, then score the new events), in this process."""
    fleet = Fleet.from_settings(st.settings)
    run = Run(task="profile", task_id="profile", entities=list(entities))
    training.train_entities(
        fleet,
        entities,
        request_id="bench-profile",
        run=run,
        enqueue=lambda task, args: "bench-profile",
    )
    starts = dict(queries)
    items: list[tuple[Entity, str | None, str | None]] = [
        (e, starts.get(str(e)), None) for e in entities
    ]
    scoring.score_entities(fleet, items, request_id="bench-profile", run=run)
