"""Run couchwatch and the seed pipeline on labeled events, as ``couchwatch evaluate`` does.

``evaluate_events`` runs the fleet's own code on in-memory twins of CouchDB and Redis
(:mod:`couchwatch.evaluate.fleet`): per entity, the events before that entity's cutoff (default:
the first 70% of its own span, see :func:`~workers.engine.evaluation.split.train_cutoffs`) are
ingested, planned and trained on by the fleet's planners and ``train_entities``; the rest are
ingested, planned and scored by ``score_entities``. Every score result the fleet computes is
a scored row, so every metric is what the fleet does.

Scored rows (one per window or login event) carry a ``detector`` column:

- each window detector of the entity's model (``robust_zscore``, ``isolation_forest``, ...);
- ``novelty``: login events scored one by one;
- ``combined``: what couchwatch alerts on — combined window scores **and** login events;
- ``seed_global`` / ``seed_per_entity``: the seed pipeline on the same split.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from workers.engine.config import EngineConfig
from workers.engine.evaluation.labels import Labels, to_utc
from workers.engine.evaluation.metrics import SCORED_COLUMNS, EvaluationReport, evaluate_by
from workers.engine.evaluation.split import DEFAULT_TRAIN_FRACTION, train_cutoffs
from workers.engine.results import ScoreResult
from workers.engine.seed_pipeline import run_seed_pipelines
from workers.settings import Settings

COMBINED = "combined"
SEED_VARIANTS: tuple[str, ...] = ("seed_global", "seed_per_entity")
RUN_COLUMNS: tuple[str, ...] = (*SCORED_COLUMNS, "threshold", "detector")

Event = Mapping[str, Any]


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
        for d in result.model.window_detectors
        if {f"score_{d}", f"threshold_{d}", f"flagged_{d}"} <= set(w.columns)
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
    settings: Settings | None = None,
    config: EngineConfig | None = None,
) -> pd.DataFrame:
    """Train before each entity's cutoff and score from it on, through the fleet on twins;
    rows of :data:`RUN_COLUMNS` (what ``bench/compute.py`` times)."""
    from couchwatch.evaluate.fleet import run_through_fleet  # the fleet's I/O code, on twins

    settings = settings or Settings(_env_file=None)  # type: ignore[call-arg]
    fleet = run_through_fleet(
        events, cutoffs, settings=settings, entity_field=entity_field, config=config
    )
    return fleet_rows(fleet.results)


def fleet_rows(results: Sequence[tuple[Any, ScoreResult]]) -> pd.DataFrame:
    """Rows of :data:`RUN_COLUMNS` from the fleet's score results (every row, flagged or not).

    An entity scored in more than one batch keeps the last result of each window or login.
    """
    parts: list[Part] = []
    for entity, result in results:
        parts += _entity_rows(str(entity), result)
    parts = [p for p in parts if len(p["score"])]
    if not parts:
        return pd.DataFrame(columns=list(RUN_COLUMNS))
    scored = _frame(parts)
    keys = ["entity", "detector", "window_start", "window_end"]
    scored = scored.drop_duplicates(subset=keys, keep="last").reset_index(drop=True)
    for col in ("window_start", "window_end"):
        scored[col] = to_utc(scored[col], what=col).to_numpy()
    return scored


@dataclass
class Evaluation:
    """One evaluation: reports per detector, scored rows, cutoffs, and the fleet's anomalies."""

    reports: dict[str, EvaluationReport]
    scored: pd.DataFrame
    cutoffs: dict[str, pd.Timestamp]
    anomalies: list[dict[str, Any]] = field(default_factory=list)
    entity_errors: dict[str, str] = field(default_factory=dict)


def run_evaluation(
    events: Sequence[Event],
    labels: Labels,
    *,
    entity_field: str = "user_id",
    train_until: Any = None,
    settings: Settings | None = None,
    config: EngineConfig | None = None,
    train_fraction: float = DEFAULT_TRAIN_FRACTION,
    k: int | None = None,
) -> Evaluation:
    """Evaluate the fleet and the seed pipeline on ``events`` against ``labels``.

    The fleet's side runs through the fleet's own planners, training and scoring on in-memory
    twins (:func:`couchwatch.evaluate.fleet.run_through_fleet`); ``settings`` are the fleet's
    (default: defaults), ``config`` overrides their engine configuration.
    """
    from couchwatch.evaluate.fleet import run_through_fleet  # the fleet's I/O code, on twins

    events = list(events)
    if not events:
        raise ValueError("no events to evaluate")
    cutoffs = train_cutoffs(
        events, entity_field, train_until=train_until, train_fraction=train_fraction
    )
    settings = settings or Settings(_env_file=None)  # type: ignore[call-arg]
    fleet = run_through_fleet(
        events, cutoffs, settings=settings, entity_field=entity_field, config=config
    )
    ours = fleet_rows(fleet.results)
    seeds = run_seed_pipelines(
        events, entity_field=entity_field, train_until=train_until, train_fraction=train_fraction
    )
    seed_parts = [_seed_rows(seeds[name], name) for name in SEED_VARIANTS if len(seeds[name])]
    scored = pd.concat([p for p in (ours, *seed_parts) if len(p)], ignore_index=True)
    by_detector = evaluate_by(scored, labels, by="detector", k=k)
    order = [COMBINED, *sorted(set(ours["detector"]) - {COMBINED}), *SEED_VARIANTS]
    reports = {name: by_detector[name] for name in order if name in by_detector}
    return Evaluation(reports, scored, cutoffs, fleet.anomalies, fleet.entity_errors)


def evaluate_events(
    events: Sequence[Event],
    labels: Labels,
    *,
    entity_field: str = "user_id",
    train_until: Any = None,
    settings: Settings | None = None,
    config: EngineConfig | None = None,
    train_fraction: float = DEFAULT_TRAIN_FRACTION,
    k: int | None = None,
) -> tuple[dict[str, EvaluationReport], pd.DataFrame, dict[str, pd.Timestamp]]:
    """Evaluate couchwatch (through the fleet's code) and the seed pipeline on ``events``.

    Returns ``(reports, scored, cutoffs)``: one report per detector (``combined`` first, then
    the window detectors, ``novelty``, and the two seed variants), every scored row with its
    ``detector`` (:data:`RUN_COLUMNS`), and the per-entity train/score cutoff. See
    :func:`run_evaluation`.
    """
    run = run_evaluation(
        events,
        labels,
        entity_field=entity_field,
        train_until=train_until,
        settings=settings,
        config=config,
        train_fraction=train_fraction,
        k=k,
    )
    return run.reports, run.scored, run.cutoffs


def combined_rows(scored: pd.DataFrame) -> pd.DataFrame:
    """The ``combined`` rows of a run, as ``entity,window_start,window_end,score,flagged``."""
    rows = scored[scored["detector"] == COMBINED]
    rows = rows.sort_values(["entity", "window_start", "window_end"], kind="stable")
    return rows[list(SCORED_COLUMNS)].reset_index(drop=True)
