"""Calibration of raw detector scores to [0, 1] (higher = more unusual).

:class:`TailCalibrator` is the empirical CDF of an entity's own training scores, made continuous
by linear interpolation, with an exponential tail beyond the largest training score so that
"more extreme than anything seen" still ranks. A calibrated score ``s`` reads as "more unusual
than a fraction ``s`` of this entity's history"; ``1 - s`` is a tail probability, so a
threshold of ``1 - target_alert_rate`` alerts on about that fraction of normal items.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

MAX_KNOTS = 64


@dataclass(frozen=True)
class TailCalibrator:
    """Monotone map from raw scores (higher = more unusual) to [0, 1).

    Attributes:
        knots_x: increasing raw-score knots (training quantiles).
        knots_y: calibrated values at the knots, in [0, n / (n + 1)].
        tail_scale: raw-score units per e-fold of tail probability beyond ``knots_x[-1]``.
    """

    knots_x: np.ndarray
    knots_y: np.ndarray
    tail_scale: float

    @classmethod
    def fit(
        cls,
        raw: np.ndarray,
        *,
        scale_floor: float,
        sample_weight: np.ndarray | None = None,
    ) -> TailCalibrator:
        """Fit on training raw scores; ``scale_floor`` bounds the tail scale from below."""
        raw = np.asarray(raw, dtype=float)
        if raw.size == 0:
            return cls(np.array([0.0]), np.array([0.5]), float(scale_floor))
        w = np.ones_like(raw) if sample_weight is None else np.asarray(sample_weight, float)
        order = np.argsort(raw, kind="stable")
        xs, ws = raw[order], w[order]
        total = ws.sum()
        cum = np.cumsum(ws)
        # mid-rank ECDF, scaled so the largest value maps to total / (total + 1)
        uniq, first = np.unique(xs, return_index=True)
        last = np.append(first[1:], xs.size) - 1
        below = np.where(first > 0, cum[first - 1], 0.0)
        mid = (below + cum[last]) / 2.0
        ys = mid / (total + 1.0)
        ys[-1] = total / (total + 1.0)
        if uniq.size > MAX_KNOTS:
            keep = np.unique(np.linspace(0, uniq.size - 1, MAX_KNOTS).round().astype(int))
            uniq, ys = uniq[keep], ys[keep]
        q50, q99 = np.quantile(xs, [0.5, 0.99])
        scale = max(float(q99 - q50) / 2.0, float(scale_floor))
        return cls(uniq.astype(float), ys.astype(float), scale)

    def transform(self, raw: np.ndarray) -> np.ndarray:
        """Return calibrated scores in [0, 1) for raw scores; monotone non-decreasing."""
        raw = np.asarray(raw, dtype=float)
        inside = np.interp(raw, self.knots_x, self.knots_y, left=0.0)
        top_x, top_y = self.knots_x[-1], self.knots_y[-1]
        excess = np.clip(raw - top_x, 0.0, None) / self.tail_scale
        tail = 1.0 - (1.0 - top_y) * np.exp(-excess)
        out = np.where(raw > top_x, tail, inside)
        return np.clip(np.nan_to_num(out, nan=0.0), 0.0, 1.0)

    def inverse(self, score: float) -> float:
        """Return the raw score that maps to calibrated ``score`` (for thresholds in raw units)."""
        top_x, top_y = self.knots_x[-1], self.knots_y[-1]
        if score <= top_y:
            return float(np.interp(score, self.knots_y, self.knots_x))
        return float(top_x + self.tail_scale * np.log((1.0 - top_y) / max(1.0 - score, 1e-300)))

    def to_state(self) -> dict[str, Any]:
        """Return a plain-data state (arrays and floats) for persistence."""
        return {"knots_x": self.knots_x, "knots_y": self.knots_y, "tail_scale": self.tail_scale}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> TailCalibrator:
        """Rebuild from :meth:`to_state` output."""
        return cls(
            np.asarray(state["knots_x"], dtype=float),
            np.asarray(state["knots_y"], dtype=float),
            float(state["tail_scale"]),
        )
