"""Robust z-score detector: per-feature median / MAD profile.

Tiny, fast and the easiest to explain. Each feature's robust z-score (only upward deviations
count, except for two-sided features such as hour of day) is calibrated against the entity's
own training z-scores of that feature (a few quantile knots plus an exponential tail), turned
into evidence ``-log(1 - p)`` and the raw window score is the strongest feature's evidence. So a
feature that is often odd for this entity needs a bigger deviation to count than one that never
moves. Higher = more unusual; calibrated to [0, 1] by the base class.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from .base import WindowDetector

MAD_TO_SIGMA = 1.4826
MEANAD_TO_SIGMA = 1.2533
LEVELS = np.array([0.0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.98, 0.99, 0.995, 0.998, 1.0])
Z_SCALE_FLOOR = 2.0
EVIDENCE_CAP = 50.0


def robust_profile(
    X: np.ndarray,
    sample_weight: np.ndarray | None = None,
    min_scale: np.ndarray | None = None,
    relative_min_scale: np.ndarray | float = 0.1,
) -> tuple[np.ndarray, np.ndarray]:
    """Return per-column (median, scale).

    scale = max(1.4826·MAD, 1.2533·mean AD, ``relative_min_scale``·|median|, ``min_scale``,
    1e-6) > 0.
    """
    if sample_weight is not None:
        reps = np.maximum(np.round(sample_weight).astype(int), 1)
        X = np.repeat(X, reps, axis=0)
    median = np.median(X, axis=0)
    dev = np.abs(X - median)
    mad = np.median(dev, axis=0) * MAD_TO_SIGMA
    mean_ad = dev.mean(axis=0) * MEANAD_TO_SIGMA
    floor = np.maximum(np.asarray(relative_min_scale) * np.abs(median), 1e-6)
    if min_scale is not None:
        floor = np.maximum(floor, min_scale)
    return median, np.maximum(np.maximum(mad, mean_ad), floor)


class RobustZScore(WindowDetector):
    """Median/MAD detector.

    Parameters:
        two_sided: column indices where low values are as unusual as high ones.
        min_scale: smallest robust scale per column (natural units), e.g. 1 for counts.
        relative_min_scale: smallest robust scale per column as a share of its median.
        center / scale: optional fixed profile (used for population cold start); when both
            are given, ``fit`` keeps them and only fits the calibration.
    """

    _state_attrs: ClassVar[tuple[str, ...]] = ("center_", "scale_", "knots_", "tops_", "tails_")
    _scale_floor: ClassVar[float] = 0.5

    def __init__(
        self,
        *,
        two_sided: tuple[int, ...] = (),
        min_scale: tuple[float, ...] | None = None,
        relative_min_scale: tuple[float, ...] | None = None,
        center: tuple[float, ...] | None = None,
        scale: tuple[float, ...] | None = None,
    ) -> None:
        self.two_sided = two_sided
        self.min_scale = min_scale
        self.relative_min_scale = relative_min_scale
        self.center = center
        self.scale = scale

    def _fit_raw(self, X: np.ndarray, sample_weight: np.ndarray | None) -> None:
        if self.center is not None and self.scale is not None:
            self.center_ = np.asarray(self.center, dtype=float)
            self.scale_ = np.asarray(self.scale, dtype=float)
            if self.center_.shape != (X.shape[1],) or self.scale_.shape != (X.shape[1],):
                raise ValueError("center and scale must have one value per feature")
        else:
            floor = None if self.min_scale is None else np.asarray(self.min_scale, dtype=float)
            rel = 0.1 if self.relative_min_scale is None else np.asarray(self.relative_min_scale)
            self.center_, self.scale_ = robust_profile(X, sample_weight, floor, rel)
        z = self.z_scores(X)
        if sample_weight is not None:
            z = np.repeat(z, np.maximum(np.round(sample_weight).astype(int), 1), axis=0)
        n = z.shape[0]
        self.knots_ = np.quantile(z, LEVELS, axis=0).T.copy()  # features × levels
        self.tops_ = np.full(z.shape[1], n / (n + 1.0))
        spread = (self.knots_[:, -1] - self.knots_[:, 2]) / 2.0
        self.tails_ = np.maximum(spread, Z_SCALE_FLOOR)

    def feature_evidence(self, X: np.ndarray) -> np.ndarray:
        """Return per-feature evidence ``-log(1 - p)`` (n × features), higher = more unusual."""
        z = self.z_scores(X)
        out = np.empty_like(z)
        for j in range(z.shape[1]):
            knots = self.knots_[j]
            ys = LEVELS * self.tops_[j]
            inside = np.interp(z[:, j], knots, ys)
            excess = np.clip(z[:, j] - knots[-1], 0.0, None) / self.tails_[j]
            tail_log = np.log1p(-self.tops_[j]) - excess  # log(1 - p) beyond the top knot
            log_q = np.where(z[:, j] > knots[-1], tail_log, np.log1p(-np.minimum(inside, ys[-1])))
            out[:, j] = np.minimum(-log_q, EVIDENCE_CAP * 10)
        return out

    def z_scores(self, X: np.ndarray) -> np.ndarray:
        """Return directional robust z-scores (n × features); positive = unusual direction."""
        z = (np.asarray(X, dtype=float) - self.center_) / self.scale_
        two = np.zeros(z.shape[1], dtype=bool)
        two[list(self.two_sided)] = True
        return np.where(two, np.abs(z), z)

    def _raw(self, X: np.ndarray) -> np.ndarray:
        if X.shape[1] == 0:
            return np.zeros(len(X))
        return self.feature_evidence(X).max(axis=1)

    def to_state(self) -> dict[str, Any]:
        """Plain-data state; tuples of floats are kept as lists."""
        state = super().to_state()
        state["params"]["two_sided"] = list(self.two_sided)
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> RobustZScore:
        """Rebuild from :meth:`to_state` output."""
        params = dict(state["params"])
        params["two_sided"] = tuple(int(i) for i in params["two_sided"])
        for key in ("center", "scale", "min_scale", "relative_min_scale"):
            if params.get(key) is not None:
                params[key] = tuple(float(v) for v in params[key])
        return super().from_state({**state, "params": params})
