"""Production-like train/test split: per entity, train on the first part of its own span."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, overload

import numpy as np
import pandas as pd

from workers.engine.evaluation.labels import to_utc

DEFAULT_TRAIN_FRACTION = 0.7


def train_cutoffs(
    events: Sequence[Mapping[str, Any]] | pd.DataFrame,
    entity_field: str,
    *,
    train_until: Any = None,
    train_fraction: float = DEFAULT_TRAIN_FRACTION,
) -> dict[str, pd.Timestamp]:
    """Per entity, the UTC instant where training stops and scoring starts.

    With ``train_until`` (ISO string, datetime or epoch seconds) every entity shares that cutoff;
    otherwise it is ``first + train_fraction * (last - first)`` of that entity's own events.
    """
    entities, stamps = _entity_times(events, entity_field)
    if train_until is not None:
        cutoff = pd.Timestamp(to_utc([train_until], what="train_until").iloc[0])
        return dict.fromkeys(sorted(set(entities)), cutoff)
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction}")
    frame = pd.DataFrame({"entity": entities, "ts": stamps})
    bounds = frame.groupby("entity")["ts"].agg(["min", "max"])
    cut = bounds["min"] + (bounds["max"] - bounds["min"]) * train_fraction
    return {str(e): pd.Timestamp(t) for e, t in cut.items()}


def _entity_times(
    events: Sequence[Mapping[str, Any]] | pd.DataFrame, entity_field: str
) -> tuple[np.ndarray, pd.Series]:
    if isinstance(events, pd.DataFrame):
        if entity_field not in events.columns or "timestamp" not in events.columns:
            raise ValueError(f"events lack the {entity_field!r} or 'timestamp' column")
        entity_values, ts_values = list(events[entity_field]), list(events["timestamp"])
    else:
        entity_values, ts_values = [], []
        for n, event in enumerate(events):
            if entity_field not in event or "timestamp" not in event:
                raise ValueError(f"event {n} lacks {entity_field!r} or 'timestamp'")
            entity_values.append(event[entity_field])
            ts_values.append(event["timestamp"])
    return np.array([str(e) for e in entity_values], dtype=object), to_utc(ts_values)


@overload
def split_train_test(
    events: pd.DataFrame,
    entity_field: str,
    train_until: Any = None,
    train_fraction: float = DEFAULT_TRAIN_FRACTION,
) -> tuple[pd.DataFrame, pd.DataFrame]: ...
@overload
def split_train_test(
    events: Sequence[Mapping[str, Any]],
    entity_field: str,
    train_until: Any = None,
    train_fraction: float = DEFAULT_TRAIN_FRACTION,
) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]: ...
def split_train_test(
    events: Sequence[Mapping[str, Any]] | pd.DataFrame,
    entity_field: str,
    train_until: Any = None,
    train_fraction: float = DEFAULT_TRAIN_FRACTION,
) -> tuple[Any, Any]:
    """Split events like production: per entity, train before its cutoff, score from it on.

    See :func:`train_cutoffs` for the cutoff. Returns ``(train, test)`` of the input's type
    (lists keep the input order; frames keep their index).
    """
    cutoffs = train_cutoffs(
        events, entity_field, train_until=train_until, train_fraction=train_fraction
    )
    entities, stamps = _entity_times(events, entity_field)
    limits = pd.Series([cutoffs[e] for e in entities], dtype="datetime64[ns, UTC]")
    is_train = (stamps.reset_index(drop=True) < limits).to_numpy(dtype=bool)
    if isinstance(events, pd.DataFrame):
        return events[is_train], events[~is_train]
    train = [e for e, t in zip(events, is_train, strict=True) if t]
    test = [e for e, t in zip(events, is_train, strict=True) if not t]
    return train, test
