"""Compute throughput: features + fit + score with events in memory, one process.

couchwatch's engine path (the calls the fleet makes: the population profile with its held-out
alert level, then per entity a fit on its events before the cutoff and a score of the rest) in
its default configuration, against the seed pipeline's per-user and global variants on the same
demo events and the same production-like split; F1 from ``evaluate_events``. The same split
through the whole fleet on the CouchDB/Redis twins (what ``couchwatch evaluate`` runs: ingest,
validation on every read, planners, model store) is timed beside it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import pandas as pd

from bench import data
from bench.profiling import profiled
from couchwatch.evaluate.run import evaluate_events, score_entities
from workers.detection import engine_config, make_population
from workers.engine.context import ua_families
from workers.engine.evaluation.labels import load_labels
from workers.engine.evaluation.split import DEFAULT_TRAIN_FRACTION, split_train_test, train_cutoffs
from workers.engine.model import fit_entity_model
from workers.engine.seed_pipeline import score_seed_global, score_seed_per_entity
from workers.settings import Settings

FIELD = "user_id"


def _timed(fn: Any, *args: Any, **kwargs: Any) -> float:
    start = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - start


def by_entity(
    events: list[dict[str, Any]], cutoffs: Mapping[str, pd.Timestamp], *, entity_field: str
) -> dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
    """Each entity's (events before its cutoff, all its events): the split, made before timing
    as the seed's is (a fleet reads an entity's history and its new events apart)."""
    mine: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        mine.setdefault(str(event[entity_field]), []).append(event)
    return {
        entity: ([e for e in rows if pd.Timestamp(e["timestamp"]) < cutoffs[entity]], rows)
        for entity, rows in mine.items()
    }


def engine_path(
    split: Mapping[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]],
    cutoffs: Mapping[str, pd.Timestamp],
    *,
    entity_field: str,
) -> int:
    """The engine's work of the fleet on this split, in memory; returns the windows scored."""
    config = engine_config(Settings(_env_file=None))  # type: ignore[call-arg]
    population = make_population(
        [e for train, _ in split.values() for e in train], entity_field=entity_field, config=config
    )
    scored = 0
    for entity, (train, rows) in split.items():
        if not train:
            continue
        model = fit_entity_model(
            entity, train, entity_field=entity_field, config=config, population=population
        )
        scored += len(model.score(rows, score_from=cutoffs[entity].isoformat()).windows)
    return scored


def run(users: int, days: int, *, profile_dir: Any = None) -> dict[str, Any]:
    scenario = data.demo(users, days)
    events = scenario.events
    n = len(events)
    cutoffs = train_cutoffs(events, FIELD, train_fraction=DEFAULT_TRAIN_FRACTION)
    train, test = split_train_test(events, FIELD, None, DEFAULT_TRAIN_FRACTION)
    # ua-parser compiles its rule set on the first parse (~0.5 s once per process, which a
    # worker pays at start-up): pay it before timing, as the seed pays its imports
    warm_s = _timed(ua_families, str(events[0].get("user_agent") or "Mozilla/5.0"))
    split = by_entity(events, cutoffs, entity_field=FIELD)
    seconds = {
        "couchwatch": _timed(engine_path, split, cutoffs, entity_field=FIELD),
        "couchwatch_fleet_on_twins": _timed(score_entities, events, cutoffs, entity_field=FIELD),
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
            profile_dir, "compute", engine_path, split, cutoffs, entity_field=FIELD
        )
    return out
