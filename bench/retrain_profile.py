"""Where a retrain's time goes, step by step, at each history size (a developer's tool, not a
bench section): `python -m bench.retrain_profile [--days 8,80] [--users 10]`.

The bench's PouchDB Server, redis-server and workers do the registry passes and the first
training (as `bench/retrain.py` does); each round's forced retrain then runs in this process
with the steps of `workers/training.py` timed (summed over the round's entities, per entity in
the table; each step's fastest round, as a shared machine's other load only adds time). CouchDB
requests are counted and timed by method and kind of path, with the bytes sent.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench import retrain
from bench.stack import planned, services, stack, store, warm_index

Timings = dict[str, float]

STEPS: list[tuple[str, str, str]] = [  # (label, module, attribute) of what is timed
    ("task: train_entities", "workers.training", "train_entities"),
    ("population load", "workers.training", "load_population"),
    ("reviewed query", "workers.store.anomalies", "reviewed"),
    ("read_history (all)", "workers.training", "read_history"),
    ("  summary doc get", "workers.store.summaries", "load"),
    ("  summary decode", "workers.detection", "load_summary"),
    ("  since/before", "workers.engine.summary:HistorySummary", "_days_where"),
    ("  new-day events read", "workers.training_history", "training_history"),
    ("  summarize new days", "workers.detection", "summarize_events"),
    ("  endpoint counts", "workers.engine.summary:HistorySummary", "endpoint_counts"),
    ("  combine", "workers.detection", "combined"),
    ("fit_summary", "workers.detection", "fit_summary"),
    ("dump_model", "workers.detection", "dump_model"),
    ("model save", "workers.store.models:ModelStore", "save"),
    ("save_history (all)", "workers.training", "save_history"),
    ("  summary encode", "workers.detection", "dump_summary"),
    ("  summary doc put", "workers.store.summaries", "save"),
    ("registry mark_trained", "workers.training", "mark_trained"),
]


def _target(spec: str) -> Any:
    import importlib

    module, _, cls = spec.partition(":")
    obj: Any = importlib.import_module(module)
    return getattr(obj, cls) if cls else obj


@contextmanager
def timed(acc: Timings, counts: dict[str, int]) -> Iterator[None]:
    """Patch every step of STEPS (and the CouchDB transport) to add its seconds to `acc`."""
    from workers.couch.transport import CouchTransport

    saved: list[tuple[Any, str, Any]] = []

    def wrap(label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def inner(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                out = fn(*args, **kwargs)
            finally:
                acc[label] += time.perf_counter() - start
                counts[label] += 1
            if isinstance(out, bytes):
                counts[f"{label} bytes"] += len(out)
            return out

        return inner

    for label, spec, name in STEPS:
        target = _target(spec)
        saved.append((target, name, getattr(target, name)))
        setattr(target, name, wrap(label, getattr(target, name)))
    request = CouchTransport.request

    def couch_request(self: Any, method: str, path: str, **kwargs: Any) -> Any:
        kind = path.split("/")[2] if path.count("/") >= 2 else path
        kind = kind if kind.startswith("_") else "doc"
        label = f"http {method} {kind}"
        body = kwargs.get("json")
        if body is not None:
            counts[f"{label} bytes"] += len(json.dumps(body))
        start = time.perf_counter()
        try:
            return request(self, method, path, **kwargs)
        finally:
            acc[label] += time.perf_counter() - start
            counts[label] += 1

    CouchTransport.request = couch_request  # type: ignore[method-assign]
    try:
        yield
    finally:
        CouchTransport.request = request  # type: ignore[method-assign]
        for target, name, fn in reversed(saved):
            setattr(target, name, fn)


def retrain_in_process(st: Any, entities: list[str]) -> tuple[Timings, dict[str, int], Any]:
    from workers import training
    from workers.fleet import Fleet
    from workers.ids import Entity
    from workers.store.runs import Run

    fleet = Fleet.from_settings(st.settings)
    acc: Timings = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    run = Run(task="profile", task_id=uuid.uuid4().hex, entities=list(entities))
    with timed(acc, counts):
        training.train_entities(
            fleet, list[Entity](entities), request_id=run.task_id, run=run, enqueue=lambda n, a: "x"
        )
    fleet.couch.close()
    return acc, counts, run


def point(
    svc: Any, users: int, days: int, rounds: int = 5, *, longest: int | None = None
) -> dict[str, Any]:
    history, fresh_days = retrain._events(users, days, rounds, longest or days)
    per_round = []
    with stack(svc, f"profile-{days}d") as st:
        store(st, history)
        warm_index(st, str(history[0]["user_id"]))
        planned(st, "couchwatch.plan_scoring", force=True)
        planned(st, "couchwatch.plan_training", force=True)
        entities = sorted({str(e["user_id"]) for e in history})
        for fresh in fresh_days:
            store(st, fresh)
            warm_index(st, str(fresh[0]["user_id"]))
            planned(st, "couchwatch.plan_scoring", force=True)
            acc, counts, run = retrain_in_process(st, entities)
            per_round.append((acc, counts, run))
        heads = st.couch.get_many(
            st.settings.db_name("models"),
            [f"history-summary-{e}" for e in entities[:1]],
        )
        sizes = {k: v.get("size_bytes") for k, v in heads.items()}
    n = len(entities)
    totals = [r[0]["task: train_entities"] for r in per_round]
    mid = per_round[sorted(range(len(totals)), key=totals.__getitem__)[len(totals) // 2]]
    acc, counts, run = mid
    labels = {k for r in per_round for k in r[0]}
    return {
        "days": days,
        "entities": n,
        # each step's fastest round: the machine's other load only ever adds time
        "per_entity_s": {k: min(r[0].get(k, 0.0) for r in per_round) / n for k in labels},
        "counts": dict(counts),
        "rounds_s_per_entity": [t / n for t in totals],
        "history_reads": run.details.get("history_reads"),
        "summary_bytes": sizes,
        "events_in_per_entity": run.events_in / n,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", default="8,80")
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    points = []
    with tempfile.TemporaryDirectory() as tmp, services(Path(tmp)) as svc:
        sizes = [int(d) for d in args.days.split(",")]
        for days in sizes:
            points.append(point(svc, args.users, days, longest=max(sizes)))
    labels = [s[0] for s in STEPS] + sorted(
        {k for p in points for k in p["per_entity_s"] if k.startswith("http")}
    )
    print(f"{'step (ms per entity)':32}" + "".join(f"{p['days']:>10}d" for p in points))
    for label in labels:
        print(
            f"{label:32}"
            + "".join(f"{1000 * p['per_entity_s'].get(label, 0):11.2f}" for p in points)
        )
    for p in points:
        print(p["days"], "rounds", [round(x, 4) for x in p["rounds_s_per_entity"]])
        print("  reads", p["history_reads"], "events_in/entity", p["events_in_per_entity"])
        print("  summary", p["summary_bytes"])
        print("  counts", json.dumps(p["counts"], sort_keys=True))
    if args.out:
        args.out.write_text(json.dumps(points, indent=1))


if __name__ == "__main__":
    main()
