"""The seed pipeline couchwatch must beat (``/work/shared/seeds/000``), run like couchwatch.

Features per entity over a **dense** 15-minute resample (empty windows included, ``fillna(0)``):
sum of ``bytes_sent``, mean ``latency_ms``, count of errors (``status_code >= 400``) and hour of
day. Two variants, both ``IsolationForest(n_estimators=200, contamination=0.02)``:

- ``score_seed_global``: one forest over every entity's windows;
- ``score_seed_per_entity``: one forest per entity on that entity's own windows.

Both train on the train split and score the test split, and return the scored-frame shape that
``workers.engine.evaluation.evaluate_scores`` takes: ``entity, window_start, window_end, score,
flagged`` plus ``detector``. ``score`` is the isolation-forest anomaly score ``s(x)`` of Liu et al.
(``-score_samples``), in [0, 1], higher = more unusual; ``flagged`` is ``predict == -1``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import IsolationForest

from workers.engine.evaluation.labels import to_utc
from workers.engine.evaluation.split import DEFAULT_TRAIN_FRACTION, split_train_test

SEED_FEATURES: tuple[str, ...] = ("bytes_sent", "latency_ms", "is_error", "hour")
SEED_WINDOW = "15min"
N_ESTIMATORS = 200
CONTAMINATION = 0.02
RANDOM_STATE = 42

Events = Sequence[Mapping[str, Any]] | pd.DataFrame


def _column(df: pd.DataFrame, name: str) -> pd.Series:
    """Column ``name`` as floats; all-NaN when the events do not carry it."""
    if name not in df.columns:
        return pd.Series(np.nan, index=df.index, dtype=float)
    return pd.to_numeric(df[name], errors="coerce").astype(float)


def _frame(events: Events, entity_field: str) -> pd.DataFrame:
    df = events.copy() if isinstance(events, pd.DataFrame) else pd.DataFrame(list(events))
    if df.empty:
        return pd.DataFrame(columns=["entity", "timestamp", "bytes_sent", "latency_ms", "is_error"])
    return pd.DataFrame(
        {
            "entity": df[entity_field].astype(str).to_numpy(),
            "timestamp": to_utc(df["timestamp"]).to_numpy(),
            "bytes_sent": _column(df, "bytes_sent").to_numpy(),
            "latency_ms": _column(df, "latency_ms").to_numpy(),
            "is_error": (_column(df, "status_code") >= 400).astype(int).to_numpy(),
        }
    )


def seed_windows(events: Events, entity_field: str = "user_id") -> pd.DataFrame:
    """Dense 15-minute windows per entity from its first to its last event, as in the seed.

    Columns: ``entity, window_start`` (UTC) and :data:`SEED_FEATURES`; gaps are zero-filled.
    """
    df = _frame(events, entity_field)
    columns = ["entity", "window_start", *SEED_FEATURES]
    if df.empty:
        return pd.DataFrame(columns=columns)
    grouped = (
        df.set_index("timestamp")
        .groupby("entity")
        .resample(SEED_WINDOW)
        .agg({"bytes_sent": "sum", "latency_ms": "mean", "is_error": "sum"})
        .fillna(0)
        .reset_index()
        .rename(columns={"timestamp": "window_start"})
    )
    grouped["hour"] = grouped["window_start"].dt.hour
    return grouped[columns]


def _scored(windows: pd.DataFrame, model: IsolationForest, detector: str) -> pd.DataFrame:
    x = windows[list(SEED_FEATURES)].to_numpy(dtype=float)
    return pd.DataFrame(
        {
            "entity": windows["entity"].to_numpy(),
            "window_start": windows["window_start"].to_numpy(),
            "window_end": (windows["window_start"] + pd.Timedelta(SEED_WINDOW)).to_numpy(),
            "score": np.clip(-model.score_samples(x), 0.0, 1.0),
            "flagged": model.predict(x) == -1,
            "detector": detector,
        }
    )


def _forest(random_state: int) -> IsolationForest:
    return IsolationForest(
        n_estimators=N_ESTIMATORS, contamination=CONTAMINATION, random_state=random_state
    )


def score_seed_global(
    train: Events, test: Events, *, entity_field: str = "user_id", random_state: int = RANDOM_STATE
) -> pd.DataFrame:
    """Fit one forest on every entity's train windows; score every entity's test windows."""
    train_windows = seed_windows(train, entity_field)
    test_windows = seed_windows(test, entity_field)
    if train_windows.empty:
        raise ValueError("seed pipeline: no training events")
    model = _forest(random_state).fit(train_windows[list(SEED_FEATURES)].to_numpy(dtype=float))
    return _scored(test_windows, model, "seed_global")


def score_seed_per_entity(
    train: Events, test: Events, *, entity_field: str = "user_id", random_state: int = RANDOM_STATE
) -> pd.DataFrame:
    """Fit one forest per entity on its own train windows; score its test windows.

    An entity without training windows is left unscored (the seed has no fallback).
    """
    train_windows = seed_windows(train, entity_field)
    test_windows = seed_windows(test, entity_field)
    by_entity = dict(list(train_windows.groupby("entity", sort=False)))
    parts = []
    for entity, windows in test_windows.groupby("entity", sort=True):
        history = by_entity.get(entity)
        if history is None or history.empty:
            continue
        x = history[list(SEED_FEATURES)].to_numpy(dtype=float)
        parts.append(_scored(windows, _forest(random_state).fit(x), "seed_per_entity"))
    if not parts:
        return _scored(test_windows.iloc[:0], _forest(random_state).fit(np.zeros((2, 4))), "")
    return pd.concat(parts, ignore_index=True)


def run_seed_pipelines(
    events: Events,
    *,
    entity_field: str = "user_id",
    train_until: Any = None,
    train_fraction: float = DEFAULT_TRAIN_FRACTION,
    random_state: int = RANDOM_STATE,
) -> dict[str, pd.DataFrame]:
    """Split like production, then run both variants: ``{"seed_global", "seed_per_entity"}``."""
    train, test = split_train_test(events, entity_field, train_until, train_fraction)
    kwargs: dict[str, Any] = {"entity_field": entity_field, "random_state": random_state}
    return {
        "seed_global": score_seed_global(train, test, **kwargs),
        "seed_per_entity": score_seed_per_entity(train, test, **kwargs),
    }
