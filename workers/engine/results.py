"""Scored output of an entity model and the findings (flagged windows and logins) in it.

:class:`ScoreResult` exposes every scored window (``windows``) and every scored login event
(``logins``) as DataFrames with ``window_start``, ``window_end``, ``event_ids``, ``score``,
``threshold``, ``flagged``, ``severity`` (low/medium/high when flagged), ``confidence`` and the
per-detector ``score_<name>`` / ``threshold_<name>`` / ``flagged_<name>`` columns. Scores are in
[0, 1], higher = more unusual.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy.stats import chi2

from .anomaly import Finding, finding
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


def combine_pvalues(pvalues: Mapping[str, np.ndarray], how: str = "max", n: int = 0) -> np.ndarray:
    """Combine detectors' tail probabilities of the same items into one (smaller = rarer).

    ``max``: the strongest detector, Bonferroni-corrected (``k · min p``, capped at 1);
    ``fisher``: Fisher's method (independent evidence adds up). No detector: all ones.
    """
    if not pvalues:
        return np.ones(n)
    P = np.clip(np.vstack([np.asarray(p, dtype=float) for p in pvalues.values()]), 1e-300, 1.0)
    k = P.shape[0]
    if how == "fisher":
        return np.asarray(chi2.sf(-2.0 * np.log(P).sum(axis=0), 2 * k), dtype=float)
    return np.asarray(np.minimum(P.min(axis=0) * k, 1.0), dtype=float)


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

    def findings(self, *, model_id: str, model_version: int) -> list[Finding]:
        """The flagged windows and logins, with reasons, in window order then logins
        (``workers/store/anomalies.py`` maps them to anomaly documents)."""
        m = self.model
        noun = entity_noun(m.entity_field)
        limit = m.config.max_reasons
        found: list[Finding] = []
        w = self.windows
        flagged = np.flatnonzero(w["flagged"].to_numpy(dtype=bool)) if len(w) else np.zeros(0, int)
        if len(flagged) and self.features is not None:
            values = self.features.astype(float)
            X = values[list(m.features)].fillna(value=m.fill).to_numpy()
            expected = m.expected()
            for i in flagged:
                row = {str(k): v for k, v in {**values.iloc[i], **w.iloc[i]}.items()}
                reasons = window_reasons(m, X[i], row, expected=expected, noun=noun, limit=limit)
                found.append(
                    finding(
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
                        model_id=model_id,
                        model_version=model_version,
                        detector_scores={
                            k: row[f"score_{k}"] for k in m.window_detectors if f"score_{k}" in row
                        },
                    )
                )
        if len(self.logins) and m.novelty is not None:
            for _, login in self.logins.loc[self.logins["flagged"]].iterrows():
                reasons = login_reasons(login["detail"], noun=noun, limit=limit)
                event_id = str(login["event_id"])
                found.append(
                    finding(
                        entity=m.entity,
                        entity_field=m.entity_field,
                        detector="novelty",
                        window_start=login["timestamp"],
                        window_end=login["timestamp"],
                        event_ids=[event_id],
                        score=login["score"],
                        threshold=login["threshold"],
                        severity=login["severity"],
                        confidence=login["confidence"],
                        reasons=reasons,
                        model_id=model_id,
                        model_version=model_version,
                        key=event_id,
                        detector_scores={"novelty": login["score"]},
                    )
                )
        return found
