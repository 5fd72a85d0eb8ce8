"""Retrain cost over history sizes: does retraining an entity cost more when its history is longer?

For each history size (``base_days`` x 1, 3 and 10 days of demo history for the same users), the
events go through the bench's CouchDB-compatible server and two real workers: a registry pass and
a first training, then five times one more day of events (the same days at every size), a
registry pass and a forced retrain.
The figure is the median round's retrain tasks' summed body time per entity (their run records)
and the events each retrain read. The target is that retrain cost grows with the new events,
not with history: the largest size's cost at most 1.2 times the smallest's.

A retrain reads the days with new events and the entity's stored history summary
(``workers/training_history.py``); the run records say how each history was read. In process,
one entity is split into what a full read would cost (``training_history``), loading its stored
summary, and fitting the summary (``fit_summary``), so the report shows which part grows.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

from bench import data
from bench.stack import Doc, Services, Stack, planned, stack, store, warm_index
from workers.engine.model import fit_summary
from workers.events import canonical_timestamp
from workers.store import summaries
from workers.store.events import training_history
from workers.training_history import stored_summary

FIELD = "user_id"
MULTIPLES = (1, 3, 10)
ROUNDS = 5
TARGET_RATIO = 1.2


def _events(users: int, days: int, rounds: int, longest: int) -> tuple[list[Doc], list[list[Doc]]]:
    """`days` of demo history for `users` users and each of the `rounds` next days' events
    (all in the past: the demo ends at the start of today). Every size cuts its history from
    one scenario of the ``longest`` history, so the new days are the same events at every size
    and the rounds compare like with like."""
    scenario = data.demo(users, longest + rounds, seed=11)
    cuts = [canonical_timestamp(data.day_start(k)) for k in range(rounds + 1, 0, -1)]
    first = canonical_timestamp(data.day_start(rounds + 1 + days))
    history = [e for e in scenario.events if first <= e["timestamp"] < cuts[0]]
    fresh = [[e for e in scenario.events if lo <= e["timestamp"] < hi] for lo, hi in pairwise(cuts)]
    return history, fresh


def _split_one(st: Stack, entity: str, rounds: int = 3) -> dict[str, float]:
    """Seconds to read one entity's whole training history (what a full read costs), to load
    its stored summary, and to fit that summary, in this process (the fastest of ``rounds``:
    the first pays for imports and caches)."""
    reads, loads, fits, n, size = [], [], [], 0, 0
    for _ in range(rounds):
        start = time.perf_counter()
        events = training_history(st.couch, st.settings, entity, now=datetime.now(UTC))
        reads.append(time.perf_counter() - start)
        start = time.perf_counter()
        stored = summaries.load(st.couch, st.settings.db_name("models"), entity)
        if stored is None:
            raise RuntimeError(f"no history summary stored for {entity!r}")
        summary = stored_summary(stored)
        loads.append(time.perf_counter() - start)
        start = time.perf_counter()
        fit_summary(entity, summary, entity_field=FIELD)
        fits.append(time.perf_counter() - start)
        n, size = len(events), stored.size_bytes
    return {
        "events": n,
        "read_s": min(reads),
        "summary_load_s": min(loads),
        "summary_bytes": size,
        "fit_s": min(fits),
    }


def point(
    svc: Services, users: int, days: int, rounds: int = ROUNDS, *, longest: int | None = None
) -> dict[str, Any]:
    """One history size: first training, then `rounds` times one more day of events and a
    timed retrain; the median round's figures (one retrain task of a few entities is short
    enough for the machine's noise to show)."""
    history, fresh_days = _events(users, days, rounds, longest or days)
    per_round: list[dict[str, float]] = []
    reads: dict[str, int] = {}
    with stack(svc, f"retrain-{days}d") as st:
        store(st, history)
        warm_index(st, str(history[0][FIELD]))
        planned(st, "couchwatch.plan_scoring", force=True)
        planned(st, "couchwatch.plan_training", force=True)
        entities = sorted({str(e[FIELD]) for e in history})
        for fresh in fresh_days:
            store(st, fresh)
            warm_index(st, str(fresh[0][FIELD]))
            planned(st, "couchwatch.plan_scoring", force=True)
            start = time.perf_counter()
            _, runs = planned(st, "couchwatch.plan_training", force=True)
            wall = time.perf_counter() - start
            per_round.append(
                {
                    "body_s": sum(float(r["duration_s"]) for r in runs),
                    "read": sum(int(r.get("events_in", 0)) for r in runs),
                    "trained": sum(len(r.get("entities") or []) for r in runs),
                    "tasks": len(runs),
                    "wall_s": wall,
                }
            )
            for r in runs:
                for how, k in (r.get("details", {}).get("history_reads") or {}).items():
                    reads[how] = reads.get(how, 0) + int(k)
        split = _split_one(st, entities[0])
    # per entity retrained: an entity first seen in a new day is trained (in full) there too
    per_entity = [r["body_s"] / max(1, r["trained"]) for r in per_round]
    mid = per_round[sorted(range(len(per_round)), key=per_entity.__getitem__)[len(per_round) // 2]]
    n = max(1, mid["trained"])
    everyone = {str(e[FIELD]) for day in fresh_days for e in day} | set(entities)
    return {
        "days": days,
        "entities": len(entities),
        "entities_with_new_days": len(everyone),
        "history_events": len(history),
        "new_events": sum(len(f) for f in fresh_days) / max(1, len(fresh_days)),
        "history_events_per_entity": len(history) / n,
        "rounds": len(per_round),
        "retrain_s_per_entity_rounds": per_entity,
        "retrain_tasks": mid["tasks"],
        "retrain_s_per_entity": mid["body_s"] / n,
        "retrain_events_read_per_entity": mid["read"] / n,
        "retrain_history_reads": reads,
        "retrain_wall_s": mid["wall_s"],
        "one_entity": split,
    }


def run(svc: Services, users: int, base_days: int, *, history_days: int = 90) -> dict[str, Any]:
    """The retrain cost curve over ``base_days`` x :data:`MULTIPLES` days of history."""
    sizes = [min(base_days * m, history_days - 2) for m in MULTIPLES]
    points = [point(svc, users, days, longest=max(sizes)) for days in sizes]
    first, last = points[0], points[-1]
    ratio = last["retrain_s_per_entity"] / max(1e-9, first["retrain_s_per_entity"])
    return {
        "points": points,
        "history_ratio": last["history_events_per_entity"]
        / max(1.0, first["history_events_per_entity"]),
        "ratio": ratio,
        "target": f"retrain cost at {MULTIPLES[-1]}x history <= {TARGET_RATIO}x the cost at 1x",
        "met": ratio <= TARGET_RATIO,
    }
