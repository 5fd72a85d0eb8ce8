"""Quality of scored rows against labels: incident recall, alert precision, F1, AUCs, P@k.

A *scored* frame has one row per scored window or event:
``entity, window_start, window_end, score, flagged`` (``window_end == window_start`` for a single
event; scores: higher = more unusual). A row is *positive* when it overlaps a labeled span of its
own entity: windows are half-open ``[start, end)``, events are points, spans are closed
``[start, end]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from workers.engine.evaluation.labels import LabeledIncident, Labels, to_utc

SCORED_COLUMNS: tuple[str, ...] = ("entity", "window_start", "window_end", "score", "flagged")


@dataclass(frozen=True)
class EvaluationReport:
    """Quality figures of one detector. Ratios in [0, 1]; NaN where undefined (see fields)."""

    n_rows: int  # scored windows and events
    n_positive_rows: int  # rows overlapping a labeled span
    n_flagged: int
    n_flagged_true: int  # flagged rows overlapping a labeled span
    n_incidents: int
    n_detected: int  # incidents overlapped by at least one flagged row
    incident_recall: float  # n_detected / n_incidents (NaN without incidents)
    alert_precision: float  # n_flagged_true / n_flagged (0.0 when nothing is flagged)
    f1: float  # harmonic mean of incident recall and alert precision
    roc_auc: float  # over all rows, NaN unless both classes are present
    pr_auc: float  # average precision over all rows, NaN without positive rows
    k: int
    precision_at_k: float  # share of positive rows among the k highest scores
    recall_by_kind: dict[str, float] = field(default_factory=dict)
    incidents_by_kind: dict[str, tuple[int, int]] = field(default_factory=dict)  # (found, all)
    missed: tuple[LabeledIncident, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly figures (timestamps as ISO strings, NaN as None)."""
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if name == "missed":
                value = [[i.entity, i.start.isoformat(), i.end.isoformat(), i.kind] for i in value]
            elif isinstance(value, float) and math.isnan(value):
                value = None
            out[name] = value
        return out


def _overlap(frame: pd.DataFrame, incident: LabeledIncident) -> np.ndarray:
    ws, we = frame["window_start"], frame["window_end"]
    hit = (frame["entity"] == incident.entity) & (ws <= incident.end)
    hit &= (we > incident.start) | (ws >= incident.start)
    return hit.to_numpy(dtype=bool)


def _prepare(scored: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in SCORED_COLUMNS if c not in scored.columns]
    if missing:
        raise ValueError(f"scored frame lacks column(s) {', '.join(missing)}")
    frame = pd.DataFrame(
        {
            "entity": scored["entity"].astype(str).to_numpy(),
            "window_start": to_utc(scored["window_start"], what="window_start").to_numpy(),
            "window_end": to_utc(scored["window_end"], what="window_end").to_numpy(),
            "score": pd.to_numeric(scored["score"]).astype(float).to_numpy(),
            "flagged": scored["flagged"].astype(bool).to_numpy(),
        }
    )
    if frame["score"].isna().any():
        raise ValueError("scored frame has missing scores")
    return frame


def _safe(metric: Any, y: np.ndarray, s: np.ndarray) -> float:
    if y.size == 0 or y.all() or not y.any():
        return math.nan
    return float(metric(y, s))


def evaluate_scores(
    scored: pd.DataFrame, labels: Labels, *, k: int | None = None
) -> EvaluationReport:
    """Score quality of one detector's rows against ``labels``.

    ``k`` for precision@k defaults to the number of labeled incidents (at least 1). An incident
    with no flagged row overlapping it counts as missed, also when it was never scored.
    """
    frame = _prepare(scored)
    positive = np.zeros(len(frame), dtype=bool)
    flagged = frame["flagged"].to_numpy(dtype=bool)
    detected: list[bool] = []
    for incident in labels.incidents:
        hit = _overlap(frame, incident)
        positive |= hit
        detected.append(bool((hit & flagged).any()))
    n_incidents, n_detected = len(detected), sum(detected)
    n_flagged, n_true = int(flagged.sum()), int((flagged & positive).sum())
    recall = n_detected / n_incidents if n_incidents else math.nan
    precision = n_true / n_flagged if n_flagged else 0.0
    f1 = (
        0.0
        if not n_incidents or recall + precision == 0
        else 2 * recall * precision / (recall + precision)
    )
    scores = frame["score"].to_numpy(dtype=float)
    k_used = max(1, n_incidents) if k is None else k
    if k_used < 1:
        raise ValueError(f"k must be >= 1, got {k_used}")
    top = np.argsort(-scores, kind="stable")[:k_used]
    by_kind: dict[str, tuple[int, int]] = {}
    for incident, found in zip(labels.incidents, detected, strict=True):
        hits, total = by_kind.get(incident.kind, (0, 0))
        by_kind[incident.kind] = (hits + int(found), total + 1)
    return EvaluationReport(
        n_rows=len(frame),
        n_positive_rows=int(positive.sum()),
        n_flagged=n_flagged,
        n_flagged_true=n_true,
        n_incidents=n_incidents,
        n_detected=n_detected,
        incident_recall=recall,
        alert_precision=precision,
        f1=f1,
        roc_auc=_safe(roc_auc_score, positive, scores),
        pr_auc=_safe(average_precision_score, positive, scores),
        k=k_used,
        precision_at_k=float(positive[top].mean()) if top.size else math.nan,
        recall_by_kind={kind: h / t for kind, (h, t) in sorted(by_kind.items())},
        incidents_by_kind=dict(sorted(by_kind.items())),
        missed=tuple(i for i, found in zip(labels.incidents, detected, strict=True) if not found),
    )


def evaluate_by(
    scored: pd.DataFrame, labels: Labels, *, by: str = "detector", k: int | None = None
) -> dict[str, EvaluationReport]:
    """One report per value of column ``by`` (e.g. per detector), in sorted order."""
    return {
        str(name): evaluate_scores(group, labels, k=k)
        for name, group in scored.groupby(by, sort=True)
    }
