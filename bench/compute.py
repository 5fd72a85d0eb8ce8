"""Compute throughput: features + fit + score with events in memory, one process.

couchwatch's default configuration against the seed pipeline's per-user and global variants on
the same demo events and the same production-like split; F1 from ``evaluate_events``.
"""

from __future__ import annotations

import time
from typing import Any

from bench import data
from bench.profiling import profiled
from couchwatch.evaluate.run import evaluate_events, score_entities
from workers.engine.context import ua_families
from workers.engine.evaluation.labels import load_labels
from workers.engine.evaluation.split import DEFAULT_TRAIN_FRACTION, split_train_test, train_cutoffs
from workers.engine.seed_pipeline import score_seed_global, score_seed_per_entity

FIELD = "user_id"


def _timed(fn: Any, *args: Any, **kwargs: Any) -> float:
    start = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - start


def run(users: int, days: int, *, profile_dir: Any = None) -> dict[str, Any]:
    scenario = data.demo(users, days)
    events = scenario.events
    n = len(events)
    cutoffs = train_cutoffs(events, FIELD, train_fraction=DEFAULT_TRAIN_FRACTION)
    train, test = split_train_test(events, FIELD, None, DEFAULT_TRAIN_FRACTION)
    # ua-parser compiles its rule set on the first parse (~0.5 s once per process, which a
    # worker pays at start-up): pay it before timing, as the seed pays its imports
    warm_s = _timed(ua_families, str(events[0].get("user_agent") or "Mozilla/5.0"))
    seconds = {
        "couchwatch": _timed(score_entities, events, cutoffs, entity_field=FIELD),
        "seed_per_entity": _timed(score_seed_per_entity, train, test, entity_field=FIELD),
        "seed_global": _timed(score_seed_global, train, test, entity_field=FIELD),
    }
    reports, _, _ = evaluate_events(events, load_labels(scenario.labels), entity_field=FIELD)
    f1 = {
        "couchwatch": reports["combined"].f1,
        "seed_per_entity": reports["seed_per_entity"].f1,
        "seed_global": reports["seed_global"].f1,
    }
    eps = {name: n / s for name, s in seconds.items()}
    speedup = eps["couchwatch"] / eps["seed_per_entity"]
    out: dict[str, Any] = {
        "entities": users,
        "days": days,
        "events": n,
        "seconds": seconds,
        "warm_up_s": warm_s,
        "events_per_s": eps,
        "f1": f1,
        "speedup_vs_seed_per_entity": speedup,
        "speedup_vs_seed_global": eps["couchwatch"] / eps["seed_global"],
        "target": ">= 20x seed per-user events/s with F1 >= seed per-user F1",
        "met": bool(speedup >= 20 and f1["couchwatch"] >= f1["seed_per_entity"]),
    }
    if profile_dir is not None:
        out["profile"] = profiled(
            profile_dir, "compute", score_entities, events, cutoffs, entity_field=FIELD
        )
    return out
