"""Robust z-score detector, shrunk toward the population, with heavy (Student t) tails.

Per feature the entity's robust centre (median) and scale (MAD, mean absolute deviation) are
computed on a transformed scale (``log1p`` for counts, bytes and latencies, where a doubling is
one step whatever the level) and **shrunk toward the population's** by ``prior_strength``
pseudo-windows: an entity with 3 windows of history is mostly the population, one with 3,000 is
itself. So sparse entities are modeled from what they have, never thrown to another model.

Each feature's directional z becomes a tail probability under a Student t with ``dof`` degrees
of freedom (heavier tails than a Gaussian: behaviour data have them); the window's p-value is the
smallest feature p-value times the number of features (Bonferroni). The score is ``1 - p``, in
[0, 1], higher = more unusual, and ``1 - score`` is an analytic tail probability: no
recalibration on the training windows, so the alert rate is not optimistic on new data.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

import numpy as np
from scipy.special import stdtr

MAD_TO_SIGMA = 1.4826
MEANAD_TO_SIGMA = 1.2533


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


def transform(X: np.ndarray, logged: np.ndarray) -> np.ndarray:
    """``log1p`` of the columns flagged in ``logged`` (negative values clipped to 0)."""
    out = np.array(X, dtype=float, copy=True)
    if logged.any():
        out[:, logged] = np.log1p(np.clip(out[:, logged], 0.0, None))
    return out


class RobustZScore:
    """Shrunk median/MAD detector with analytic tails.

    Parameters:
        logged: column indices modeled on the ``log1p`` scale.
        two_sided: column indices where a low value is as unusual as a high one.
        min_scale: smallest scale per column, in transformed units.
        prior_center / prior_scale: the population's profile per column (transformed units);
            without them the entity's own profile is used as is.
        prior_strength: pseudo-windows the population profile counts for.
        dof: degrees of freedom of the Student t tails.
        n_tests: effective number of independent features for the Bonferroni correction
            (None: every feature counts; correlated features such as bytes sum and max are
            better counted once).
    """

    def __init__(
        self,
        *,
        logged: tuple[int, ...] = (),
        two_sided: tuple[int, ...] = (),
        min_scale: tuple[float, ...] | None = None,
        prior_center: tuple[float, ...] | None = None,
        prior_scale: tuple[float, ...] | None = None,
        prior_strength: float = 10.0,
        dof: float = 4.0,
        n_tests: float | None = None,
    ) -> None:
        self.logged = logged
        self.two_sided = two_sided
        self.min_scale = min_scale
        self.prior_center = prior_center
        self.prior_scale = prior_scale
        self.prior_strength = prior_strength
        self.dof = dof
        self.n_tests = n_tests

    def _mask(self, idx: Sequence[int], d: int) -> np.ndarray:
        mask = np.zeros(d, dtype=bool)
        mask[list(idx)] = True
        return mask

    def fit(self, X: np.ndarray, y: Any = None, sample_weight: np.ndarray | None = None) -> Self:
        """Learn the entity's profile from ``X`` (n × features, NaN filled); return ``self``."""
        X = np.asarray(X, dtype=float)
        d = X.shape[1]
        self.n_features_in_ = d
        T = transform(X, self._mask(self.logged, d))
        floor = np.zeros(d) if self.min_scale is None else np.asarray(self.min_scale, float)
        n = float(len(T) if sample_weight is None else np.sum(sample_weight))
        if len(T):
            own_c, own_s = robust_profile(T, sample_weight, floor, 0.0)
        else:
            own_c, own_s = np.zeros(d), np.ones(d)
        if self.prior_center is not None and self.prior_scale is not None:
            pc, ps = np.asarray(self.prior_center, float), np.asarray(self.prior_scale, float)
            k = float(self.prior_strength)
            self.center_ = (n * own_c + k * pc) / (n + k)
            var = (n * own_s**2 + k * ps**2) / (n + k)
        else:
            self.center_, var = own_c, own_s**2
        self.scale_ = np.maximum(np.sqrt(var), np.maximum(floor, 1e-6))
        self.n_windows_ = n
        return self

    def z_scores(self, X: np.ndarray) -> np.ndarray:
        """Directional z per feature (n × features); positive = the unusual direction."""
        T = transform(np.asarray(X, dtype=float), self._mask(self.logged, self.n_features_in_))
        z = (T - self.center_) / self.scale_
        return np.where(self._mask(self.two_sided, self.n_features_in_), np.abs(z), z)

    def feature_pvalues(self, X: np.ndarray) -> np.ndarray:
        """One-sided tail probability per feature (n × features), smaller = more unusual."""
        z = self.z_scores(X)
        p = stdtr(self.dof, -z)
        two = self._mask(self.two_sided, self.n_features_in_)
        return np.where(two, np.minimum(2.0 * p, 1.0), p)

    @property
    def tests(self) -> float:
        """The Bonferroni factor: ``n_tests`` or the number of features."""
        return float(self.n_tests if self.n_tests is not None else self.n_features_in_)

    def pvalues(self, X: np.ndarray) -> np.ndarray:
        """Window p-value: smallest feature p-value × :attr:`tests` (capped at 1)."""
        if self.n_features_in_ == 0:
            return np.ones(len(X))
        return np.minimum(self.feature_pvalues(X).min(axis=1) * self.tests, 1.0)

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        """Return ``1 - p`` per window, in [0, 1], higher = more unusual."""
        return 1.0 - self.pvalues(X)

    def to_state(self) -> dict[str, Any]:
        """Plain-data state (parameters and fitted arrays)."""
        params = {
            "logged": list(self.logged),
            "two_sided": list(self.two_sided),
            "min_scale": None if self.min_scale is None else list(self.min_scale),
            "prior_center": None if self.prior_center is None else list(self.prior_center),
            "prior_scale": None if self.prior_scale is None else list(self.prior_scale),
            "prior_strength": float(self.prior_strength),
            "dof": float(self.dof),
            "n_tests": None if self.n_tests is None else float(self.n_tests),
        }
        fitted = {"center_": self.center_, "scale_": self.scale_}
        return {
            "params": params,
            "fitted": fitted,
            "n_features_in_": int(self.n_features_in_),
            "n_windows_": float(self.n_windows_),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> RobustZScore:
        """Rebuild from :meth:`to_state` output."""
        p = state["params"]

        def floats(v: Any) -> tuple[float, ...] | None:
            return None if v is None else tuple(float(x) for x in v)

        det = cls(
            logged=tuple(int(i) for i in p["logged"]),
            two_sided=tuple(int(i) for i in p["two_sided"]),
            min_scale=floats(p["min_scale"]),
            prior_center=floats(p["prior_center"]),
            prior_scale=floats(p["prior_scale"]),
            prior_strength=float(p["prior_strength"]),
            dof=float(p["dof"]),
            n_tests=None if p.get("n_tests") is None else float(p["n_tests"]),
        )
        det.center_ = np.asarray(state["fitted"]["center_"], dtype=float)
        det.scale_ = np.asarray(state["fitted"]["scale_"], dtype=float)
        det.n_features_in_ = int(state["n_features_in_"])
        det.n_windows_ = float(state["n_windows_"])
        return det
