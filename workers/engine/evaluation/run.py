"""Run couchwatch and the seed pipeline on labeled events, as ``couchwatch evaluate`` does.

``evaluate_events`` is pure apart from its arguments. It emulates production: per entity, the
model is fitted on the events before that entity's cutoff (default: the first 70% of its own
span, see :func:`~workers.engine.evaluation.split.train_cutoffs`) with a population profile built
from the training events of **all** entities, and scores every event from the cutoff on.

Scored rows (one per window or login event) carry a ``detector`` column:

- each window detector of the entity's model (``robust_zscore``, ``isolation_forest``, ...);
- ``novelty``: login events scored one by one;
- ``combined``: what couchwatch alerts on — combined window scores **and** login events;
- ``seed_global`` / ``seed_per_entity``: the seed pipeline on the same split.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from workers.engine.config import EngineConfig
from workers.engine.evaluation.labels import Labels, to_utc
from workers.engine.evaluation.metrics import SCORED_COLUMNS, EvaluationReport, evaluate_by
from workers.engine.evaluation.split import DEFAULT_TRAIN_FRACTION, train_cutoffs
from workers.engine.model import fit_entity_model
from workers.engine.population import build_population
from workers.engine.scoring import ScoreResult
from workers.engine.seed_pipeline import run_seed_pipelines

COMBINED = "combined"
SEED_VARIANTS: tuple[str, ...] = ("seed_global", "seed_per_entity")
RUN_COLUMNS: tuple[str, ...] = (*SCORED_COLUMNS, "threshold", "detector")

Event = Mapping[str, Any]


def _split_by_entity(
    events: Sequence[Event], entity_field: str, cutoffs: Mapping[str, pd.Timestamp]
) -> tuple[list[Event], dict[str, list[Event]], dict[str, list[Event]]]:
    """All training events, and per entity its training and test events (input order)."""
    entities = [str(e.get(entity_field)) for e in events]
    stamps = to_utc([e.get("timestamp") for e in events])
    limits = pd.Series([cutoffs[e] for e in entities], dtype="datetime64[ns, UTC]")
    is_train = (stamps.reset_index(drop=True) < limits).to_numpy(dtype=bool)
    train_all: list[Event] = []
    train: dict[str, list[Event]] = {e: [] for e in cutoffs}
    test: dict[str, list[Event]] = {e: [] for e in cutoffs}
    for event, entity, in_train in zip(events, entities, is_train, strict=True):
        if in_train:
            train_all.append(event)
            train[entity].append(event)
        else:
            test[entity].append(event)
    return train_all, train, test


Part = dict[str, Any]


def _ns(values: Any) -> np.ndarray:
    return np.asarray(pd.DatetimeIndex(values).as_unit("ns").asi8, dtype=np.int64)


def _part(entity: str, frame: pd.DataFrame, cols: Sequence[str], detector: str) -> Part:
    """One detector's rows of one entity as plain arrays (``score, threshold, flagged``)."""
    score, threshold, flagged = cols
    n = len(frame)
    return {
        "entity": np.full(n, entity, dtype=object),
        "window_start": _ns(frame["window_start"]),
        "window_end": _ns(frame["window_end"]),
        "score": frame[score].to_numpy(dtype=float),
        "flagged": frame[flagged].to_numpy(dtype=bool),
        "threshold": frame[threshold].to_numpy(dtype=float),
        "detector": np.full(n, detector, dtype=object),
    }


def _entity_rows(entity: str, result: ScoreResult) -> list[Part]:
    w, logins = result.windows, result.logins
    parts = [
        _part(entity, w, (f"score_{d}", f"threshold_{d}", f"flagged_{d}"), d)
        for d in result.model.detectors
    ]
    both = ("score", "threshold", "flagged")
    if result.model.novelty is not None:
        parts.append(_part(entity, logins, ("score_novelty", "threshold", "flagged"), "novelty"))
    parts.append(_part(entity, w, both, COMBINED))
    if len(logins):
        parts.append(_part(entity, logins, both, COMBINED))
    return parts


def _frame(parts: list[Part]) -> pd.DataFrame:
    columns: dict[str, Any] = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    for col in ("window_start", "window_end"):
        columns[col] = pd.DatetimeIndex(columns[col].view("datetime64[ns]")).tz_localize("UTC")
    return pd.DataFrame(columns)[list(RUN_COLUMNS)]


def _seed_rows(scored: pd.DataFrame, name: str) -> pd.DataFrame:
    out = scored[list(SCORED_COLUMNS)].copy()
    out["threshold"] = np.nan
    out["detector"] = name
    return out


def score_entities(
    events: Sequence[Event],
    cutoffs: Mapping[str, pd.Timestamp],
    *,
    entity_field: str,
    config: EngineConfig | None = None,
) -> pd.DataFrame:
    """Fit per entity before its cutoff and score from it on; rows of :data:`RUN_COLUMNS`.

    An entity with no training events is scored against the population (cold start).
    """
    config = config or EngineConfig()
    train_all, train, test = _split_by_entity(events, entity_field, cutoffs)
    population = build_population(train_all, entity_field=entity_field, config=config)
    parts: list[Part] = []
    for entity in sorted(cutoffs):
        if not test[entity]:
            continue
        model = fit_entity_model(
            entity, train[entity], entity_field=entity_field, config=config, population=population
        )
        parts += _entity_rows(entity, model.score(test[entity]))
    parts = [p for p in parts if len(p["score"])]
    if not parts:
        return pd.DataFrame(columns=list(RUN_COLUMNS))
    scored = _frame(parts)
    for col in ("window_start", "window_end"):
        scored[col] = to_utc(scored[col], what=col).to_numpy()
    return scored


def evaluate_events(
    events: Sequence[Event],
    labels: Labels,
    *,
    entity_field: str = "user_id",
    train_until: Any = None,
    config: EngineConfig | None = None,
    train_fraction: float = DEFAULT_TRAIN_FRACTION,
    k: int | None = None,
) -> tuple[dict[str, EvaluationReport], pd.DataFrame, dict[str, pd.Timestamp]]:
    """Evaluate couchwatch and the seed pipeline on ``events`` against ``labels``.

    Returns ``(reports, scored, cutoffs)``: one report per detector (``combined`` first, then
    the window detectors, ``novelty``, and the two seed variants), every scored row with its
    ``detector`` (:data:`RUN_COLUMNS`), and the per-entity train/score cutoff.
    """
    events = list(events)
    if not events:
        raise ValueError("no events to evaluate")
    cutoffs = train_cutoffs(
        events, entity_field, train_until=train_until, train_fraction=train_fraction
    )
    ours = score_entities(events, cutoffs, entity_field=entity_field, config=config)
    seeds = run_seed_pipelines(
        events, entity_field=entity_field, train_until=train_until, train_fraction=train_fraction
    )
    seed_parts = [_seed_rows(seeds[name], name) for name in SEED_VARIANTS if len(seeds[name])]
    scored = pd.concat([ours, *seed_parts], ignore_index=True)
    by_detector = evaluate_by(scored, labels, by="detector", k=k)
    order = [COMBINED, *sorted(set(ours["detector"]) - {COMBINED}), *SEED_VARIANTS]
    reports = {name: by_detector[name] for name in order if name in by_detector}
    return reports, scored, cutoffs


def combined_rows(scored: pd.DataFrame) -> pd.DataFrame:
    """The ``combined`` rows of a run, as ``entity,window_start,window_end,score,flagged``."""
    rows = scored[scored["detector"] == COMBINED]
    rows = rows.sort_values(["entity", "window_start", "window_end"], kind="stable")
    return rows[list(SCORED_COLUMNS)].reset_index(drop=True)
