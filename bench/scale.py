"""Scale curve (small histories), steady state, worker RSS and model sizes at the large point.

Store points go through PouchDB Server and two real workers (plan + train + score); memory points
feed the engine from memory (population over every entity, then fit + score a sample).
"""

from __future__ import annotations

import gc
import itertools
import statistics
import time
from dataclasses import dataclass
from typing import Any

from bench import data
from bench.fleet_e2e import model_sizes, task_overhead
from bench.stack import Doc, Services, Stack, planned, stack, store, warm_index, worker_peaks
from scheduler.planning import CHECKPOINT
from workers.engine.model import fit_entity_model
from workers.engine.population import build_population

FIELD = "user_id"
MEMORY_ROUNDS = 3  # fit+score rounds over the same sample; the fastest counts
STEADY_REPEATS = 3  # passes per history size; the median is compared (one pass is noisy)
MB = 1024 * 1024


def _pass(st: Stack, fresh: list[Doc]) -> dict[str, Any]:
    """Store `fresh`, then one timed scoring pass (plan_scoring and every score task)."""
    store(st, fresh)
    warm_index(st, str(fresh[0][FIELD]))
    start = time.perf_counter()
    plan, runs = planned(st, "couchwatch.plan_scoring", force=True)
    wall = time.perf_counter() - start
    return {
        "new_events": len(fresh),
        "wall_s": wall,
        "plan_s": float(plan["duration_s"]),
        "plan_events_in": int(plan["events_in"]),
        "score_tasks": len(runs),
        "score_body_s": sum(float(r["duration_s"]) for r in runs),
        "runs": runs,
    }


def store_point(
    svc: Services, n: int, history: int, fresh: int, *, steady: tuple[int, int] | None = None
) -> dict[str, Any]:
    old, new = data.small_entities(n, history, fresh, prefix=f"s{n}-")
    with stack(svc, f"scale-{n}") as st:
        start = time.perf_counter()
        store(st, old)
        warm_index(st, str(old[0][FIELD]))
        load_s = time.perf_counter() - start
        start = time.perf_counter()
        plan, _ = planned(st, "couchwatch.plan_scoring", force=True)
        _, train_runs = planned(st, "couchwatch.plan_training", force=True)
        train_wall = time.perf_counter() - start
        scored = _pass(st, new)
        overhead = task_overhead(train_runs, scored.pop("runs"))
        overhead["batch_size"] = st.settings.couchwatch_batch_size
        wall = train_wall + scored["wall_s"]
        out: dict[str, Any] = {
            "entities": n,
            "through_store": True,
            "events": len(old) + len(new),
            "wall_s": wall,
            "per_entity_ms": wall / n * 1000,
            "load_s": load_s,
            "train_phase_s": train_wall,
            "score_phase_s": scored["wall_s"],
            "plan_history_s": float(plan["duration_s"]),
            "plan_history_events": len(old),
            "plan_new_s": scored["plan_s"],
            "plan_new_events": scored["plan_events_in"],
            "train_tasks": len(train_runs),
            "overhead": overhead,
        }
        peaks = worker_peaks(st)
        out["worker_peak_rss_mb"] = {k: max(v) / MB if v else None for k, v in peaks.items()}
        out["model_size"] = model_sizes(st)
        if steady is not None:
            out["steady"] = steady_state(st, new, n * (history + fresh), *steady)
    return out


def steady_state(
    st: Stack, fresh: list[Doc], history_now: int, new_events: int, extra: int
) -> dict[str, Any]:
    """One scoring pass over `new_events` new events at two history sizes."""
    last: dict[str, Doc] = {}
    for e in fresh:
        last[str(e[FIELD])] = e
    entities = sorted(last)
    per_entity = 5
    m = max(1, new_events // per_entity)
    slices = iter(range(2 * STEADY_REPEATS))

    def passes(tag: str) -> dict[str, Any]:
        """STEADY_REPEATS passes, each over new events of other entities; the median counts."""
        walls, plans, last_pass = [], [], {}
        for _ in range(STEADY_REPEATS):
            k = next(slices)
            chosen = [entities[(k * m + j) % len(entities)] for j in range(m)]
            last_pass = _pass(st, data.later_events(last, chosen, new_events, f"{tag}{k}"))
            last_pass.pop("runs")
            walls.append(last_pass["wall_s"])
            plans.append(last_pass["plan_s"])
        return {
            **last_pass,
            "wall_s": statistics.median(walls),
            "plan_s": statistics.median(plans),
            "walls_s": walls,
        }

    a = passes("sa")
    a["history_events"] = history_now + STEADY_REPEATS * new_events
    older = data.older_history(entities, extra)
    store(st, older)
    # that history was scored long ago: move the planner's checkpoint past it, as production would
    seq = st.couch.db_info(st.settings.events_db)["update_seq"]
    st.couch.put_local(st.settings.events_db, CHECKPOINT, {"seq": str(seq)})
    warm_index(st, entities[0])
    b = passes("sb")
    b["history_events"] = a["history_events"] + len(older) + STEADY_REPEATS * new_events
    ratio = b["wall_s"] / a["wall_s"]
    return {
        "small": a,
        "large": b,
        "repeats": STEADY_REPEATS,
        "ratio": ratio,
        "target": "within +-20%",
        "met": abs(ratio - 1) <= 0.2,
    }


@dataclass
class _Sample:
    """One memory point's sampled entities, kept to be re-timed beside the next point."""

    entities: int
    chosen: list[str]
    hist: dict[str, list[Doc]]
    news: dict[str, list[Doc]]
    population: Any
    population_per_entity_s: float

    def fit_and_score(self) -> float:
        start = time.perf_counter()
        for entity in self.chosen:
            model = fit_entity_model(
                entity, self.hist[entity], entity_field=FIELD, population=self.population
            )
            model.score(self.news[entity])
        return time.perf_counter() - start

    def per_entity_ms(self, fit_s: float) -> float:
        return (self.population_per_entity_s + fit_s / len(self.chosen)) * 1000


_previous: list[_Sample] = []  # the last memory point of this process


def memory_point(n: int, history: int, fresh: int, sample: int) -> dict[str, Any]:
    """Population over `n` entities, then fit + score of a sample, in MEMORY_ROUNDS rounds.

    The previous point's sample is re-timed in the same rounds (interleaved), so the ratio
    between consecutive points compares work measured at the same moment: this machine's
    speed drifts by more than 20% between minutes.
    """
    old, new = data.small_entities(n, history, fresh, prefix=f"m{n}-")
    hist, news = data.by_entity(old), data.by_entity(new)
    # the generated events are input, not engine state: keep the cyclic GC from rescanning a
    # million event dicts on every collection (a worker never holds the fleet's events)
    gc.collect()
    gc.freeze()
    try:
        start = time.perf_counter()
        population = build_population(old, entity_field=FIELD)
        pop_s = time.perf_counter() - start
        # entity i is a clone of template i % templates: the first `sample` entities are the
        # same mix of templates at every point, so each point fits the same work
        own = _Sample(n, sorted(hist)[:sample], hist, news, population, pop_s / n)
        prev = _previous[-1] if _previous else None
        rounds, prev_rounds = [], []
        for _ in range(MEMORY_ROUNDS):
            rounds.append(own.fit_and_score())
            if prev is not None:
                prev_rounds.append(prev.fit_and_score())
    finally:
        gc.unfreeze()
    _previous[:] = [own]
    fit_s = min(rounds)  # the same work each round: the fastest is the least disturbed
    out: dict[str, Any] = {
        "entities": n,
        "through_store": False,
        "events": len(old) + len(new),
        "population_s": pop_s,
        "sampled_entities": len(own.chosen),
        "sample_fit_score_s": fit_s,
        "sample_rounds_s": rounds,
        "per_entity_ms": own.per_entity_ms(fit_s),
    }
    if prev is not None:
        prev_ms = prev.per_entity_ms(min(prev_rounds))
        out["interleaved"] = {
            "previous_entities": prev.entities,
            "previous_rounds_s": prev_rounds,
            "previous_per_entity_ms": prev_ms,
            "ratio": out["per_entity_ms"] / prev_ms,
        }
    return out


def ratios(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for small, large in itertools.pairwise(points):
        beside = large.get("interleaved") or {}
        if beside.get("previous_entities") == small["entities"]:
            r = beside["ratio"]  # both measured in the same rounds
        else:
            r = large["per_entity_ms"] / small["per_entity_ms"]
        out.append(
            {"from": small["entities"], "to": large["entities"], "ratio": r, "met": r <= 1.2}
        )
    return out
