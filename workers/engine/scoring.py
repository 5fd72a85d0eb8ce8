"""Scored output of an entity model and the anomaly documents built from it.

:class:`ScoreResult` exposes every scored window (``windows``) and every scored login event
(``logins``) as DataFrames with ``window_start``, ``window_end``, ``event_ids``, ``score``,
``threshold``, ``flagged``, ``severity`` (low/medium/high when flagged), ``confidence`` and the
per-detector ``score_<name>`` / ``threshold_<name>`` / ``flagged_<name>`` columns. Scores are in
[0, 1], higher = more unusual.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .anomaly import make_anomaly
from .reasons import entity_noun, login_reasons, window_reasons

if TYPE_CHECKING:
    from .model import EntityModel

COMBINED_COLUMNS = (
    "kind",
    "window_start",
    "window_end",
    "event_ids",
    "score",
    "threshold",
    "flagged",
    "severity",
    "confidence",
)
EVIDENCE_CAP = 50.0


def combine_evidence(scores: Mapping[str, np.ndarray], how: str = "max") -> np.ndarray:
    """Combine calibrated detector scores into raw evidence (nats), higher = more unusual.

    Each score ``s`` becomes ``-log(1 - s)``; ``max`` keeps the strongest detector, ``fisher``
    sums them. The caller calibrates the result on the entity's training windows.
    """
    evidence = [
        -np.log(np.clip(1.0 - np.asarray(s), np.exp(-EVIDENCE_CAP), 1.0)) for s in scores.values()
    ]
    stacked = np.vstack(evidence)
    return stacked.max(axis=0) if how == "max" else stacked.sum(axis=0)


def severity_of(score: float, threshold: float, factors: tuple[float, float]) -> str:
    """Return low / medium / high from how far the tail probability ``1 - score`` falls below
    ``1 - threshold`` (medium at ``factors[0]`` times smaller, high at ``factors[1]``)."""
    base = max(1.0 - threshold, 1e-12)
    tail = 1.0 - score
    if tail <= base / factors[1]:
        return "high"
    if tail <= base / factors[0]:
        return "medium"
    return "low"


@dataclass
class ScoreResult:
    """Scores of one entity's events. ``features`` holds the window feature values."""

    model: EntityModel
    windows: pd.DataFrame
    logins: pd.DataFrame
    features: pd.DataFrame | None
    dropped_events: int = 0

    def combined(self) -> pd.DataFrame:
        """Every scored window and login event in one frame (``kind`` = window|login)."""
        parts = []
        for kind, frame in (("window", self.windows), ("login", self.logins)):
            if len(frame):
                parts.append(frame.assign(kind=kind)[list(COMBINED_COLUMNS)])
        if not parts:
            return pd.DataFrame(columns=list(COMBINED_COLUMNS))
        both = pd.concat(parts, ignore_index=True)
        return both.sort_values(["window_start", "kind"], kind="stable").reset_index(drop=True)

    def detector_frame(self, name: str) -> pd.DataFrame:
        """Scores of one detector (a window detector, ``combined`` or ``novelty``)."""
        if name == "novelty":
            frame = self.logins
            cols = ["score_novelty", "threshold", "flagged"]
        elif name == "combined":
            frame, cols = self.windows, ["score", "threshold", "flagged"]
        else:
            frame = self.windows
            cols = [f"score_{name}", f"threshold_{name}", f"flagged_{name}"]
        out = frame[["window_start", "window_end", "event_ids", *cols]].copy()
        out.columns = ["window_start", "window_end", "event_ids", "score", "threshold", "flagged"]
        return out

    def to_anomalies(
        self, *, model_id: str, model_version: int, now: datetime | None = None
    ) -> list[dict[str, Any]]:
        """Return anomaly documents for flagged windows and logins, with reasons."""
        m = self.model
        ref = {"id": model_id, "version": model_version}
        noun = entity_noun(m.entity_field)
        limit = m.config.max_reasons
        docs: list[dict[str, Any]] = []
        flagged: np.ndarray | list[int] = (
            np.flatnonzero(self.windows["flagged"].to_numpy(dtype=bool))
            if len(self.windows)
            else []
        )
        if len(flagged) and self.features is not None:
            X = self.features.astype(float).fillna(value=m.fill).to_numpy()
            z = m.z_scores(X)
            for i in flagged:
                row = self.windows.iloc[i]
                reasons = window_reasons(
                    dict(zip(m.features, X[i].tolist(), strict=True)),
                    dict(zip(m.features, z[i].tolist(), strict=True)),
                    center=m.explain_center,
                    hour_counts=m.hour_counts,
                    weekday_counts=m.weekday_counts,
                    window_start=row["window_start"],
                    noun=noun,
                    limit=limit,
                )
                docs.append(
                    make_anomaly(
                        entity=m.entity,
                        entity_field=m.entity_field,
                        detector=m.window_kind,
                        window_start=row["window_start"],
                        window_end=row["window_end"],
                        event_ids=row["event_ids"],
                        score=row["score"],
                        threshold=row["threshold"],
                        severity=row["severity"],
                        confidence=row["confidence"],
                        reasons=reasons,
                        model=ref,
                        now=now,
                        detector_scores={k: row[f"score_{k}"] for k in m.detectors},
                    )
                )
        if len(self.logins) and m.novelty is not None:
            for _, row in self.logins.loc[self.logins["flagged"]].iterrows():
                surprises = m.novelty.surprises({str(k): v for k, v in row.items()})
                reasons = login_reasons(surprises, weights=m.novelty.weights, limit=limit)
                event_id = str(row["event_id"])
                docs.append(
                    make_anomaly(
                        entity=m.entity,
                        entity_field=m.entity_field,
                        detector="novelty",
                        window_start=row["timestamp"],
                        window_end=row["timestamp"],
                        event_ids=[event_id],
                        score=row["score"],
                        threshold=row["threshold"],
                        severity=row["severity"],
                        confidence=row["confidence"],
                        reasons=reasons,
                        model=ref,
                        now=now,
                        key=event_id,
                        detector_scores={"novelty": row["score"]},
                    )
                )
        return docs
