"""Seasonal baseline detector for per-service metric windows (hour-of-week aware).

A service's window features follow a daily and weekly rhythm that swamps anomalies for a
detector without time context. :class:`SeasonalBaseline` learns, per feature, the value expected
in each of the 168 hour-of-week slots (UTC) and scores how far a window sits from its slot:

1. transform: ``log1p`` for heavy-tailed features (counts, bytes, latencies), so a doubling is
   one step at any level;
2. expected value per slot, built in three shrunk levels from weighted medians: the global
   median; an hour-of-day profile shrunk toward it; a day-of-week offset (median of what the
   hour-of-day profile leaves) shrunk toward 0; then the slot's own median residual, smoothed
   over neighbouring hours and shrunk toward that prior by ``prior_strength`` windows; plus
   the median residual of the last ``level_days`` (the service's current level) and a damped
   Theil-Sen trend of the daily residuals (at most ``trend_horizon_days`` extrapolated);
3. scale: 1.4826·MAD of the training residuals per hour of day, shrunk toward the all-hours MAD,
   widened for days of the week with little history, multiplied by how much wider held-out
   residuals are (``inflation_``), floored per slot by ``min_scale`` (feature units) and
   ``relative_min_scale`` (share of the expected value); ratio features also get a binomial
   floor from the window's own event count;
4. evidence per window: the largest directional residual (pointwise) and the largest CUSUM of
   residuals (sustained shifts, see :mod:`.level_shift`), each divided by its training
   ``ref_quantile``; the raw score is the larger of the two;
5. calibration: a :class:`~workers.engine.calibration.TailCalibrator` fitted on out-of-sample
   raw scores (fit on the first 70% / score the last 30%, and the reverse), then the baseline is
   refit on everything. ``score_samples`` is in [0, 1], higher = more unusual.

See ``docs/detectors.md`` for the maths in words, the failure modes and measured figures.
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np
from sklearn.exceptions import NotFittedError

from ..calibration import TailCalibrator
from ..features import LOGGED_FEATURES, RATIO_FEATURES
from .level_shift import cusum, segment_ids
from .robust_zscore import MAD_TO_SIGMA
from .seasonal_profile import (
    DAY_NS,
    TWO_SIDED_NAMES,
    WEEK_HOURS,
    binomial_z,
    daily_trend,
    group_median,
    hour_of_week,
    inflation,
    level_offset,
    neighbour_kernel,
    scale_floor,
    seasonal_min_scales,
    seasonal_relative_min_scales,
    shrink,
)

__all__ = [
    "SeasonalBaseline",
    "hour_of_week",
    "seasonal_min_scales",
    "seasonal_relative_min_scales",
]

CALIBRATION_FLOOR = 0.05
CONTEXT_ROWS = 8
"""Rows before a held-out block scored with it (two hours of 15-min windows, as production)."""


def _matrix(X: np.ndarray) -> np.ndarray:
    """``X`` as a 2-D float array (ValueError otherwise)."""
    X = np.asarray(X, dtype=float)
    if X.ndim != 2:
        raise ValueError(f"expected a 2-D array of windows × features, got {X.ndim}-D")
    return X


def _check_fitted(det: object, attr: str) -> None:
    """Raise :class:`~sklearn.exceptions.NotFittedError` unless ``det`` has ``attr``."""
    if not hasattr(det, attr):
        raise NotFittedError(f"{type(det).__name__} is not fitted yet; call fit first")


class SeasonalBaseline:
    """Hour-of-week robust baseline plus CUSUM level-shift evidence, calibrated to [0, 1].

    Parameters:
        features: feature names, in column order (they choose the defaults below).
        two_sided: column indices where a drop counts as much as a rise, in addition to the
            names in :data:`TWO_SIDED_NAMES` when ``directions_by_name`` is true.
        min_scale / relative_min_scale: scale floors in feature units / as a share of the
            expected value (None: :func:`seasonal_min_scales` and
            :func:`seasonal_relative_min_scales`).
        window_s: window length in seconds (gaps are counted in windows).
        logged: column indices modeled on the ``log1p`` scale (None: by name, counts, bytes,
            latencies).
        directions_by_name: also make :data:`TWO_SIDED_NAMES` features two-sided.
        prior_strength: pseudo-windows each shrinkage level's prior counts for.
        smoothing: share of a slot's weight given to its two neighbouring hours.
        drift: CUSUM reference, in robust sigmas per window (detects shifts of about 2·drift).
        z_cap: largest residual one window adds to the CUSUM.
        max_gap_windows: missing windows the CUSUM bridges; a longer gap restarts it.
        level_days: days at the end of the history whose median residual sets the current
            level (0: the whole history's level).
        trend_horizon_days: furthest a daily trend is extrapolated from the level's reference
            time ``t_ref_`` (0: no trend).
        unseen_day_scale: scale factor for a day of the week without history; a day with
            ``n`` windows gets ``sqrt(1 + (f² - 1)·k / (n + k))``, ``k = prior_strength``.
        ref_quantile: training quantile each evidence kind is divided by before combining.
        holdout: share of rows held out (at each end) to calibrate out of sample.
        min_holdout_rows: below this many held-out rows, calibrate in sample.
    """

    def __init__(
        self,
        *,
        features: tuple[str, ...],
        two_sided: tuple[int, ...] = (),
        min_scale: tuple[float, ...] | None = None,
        relative_min_scale: tuple[float, ...] | None = None,
        window_s: int = 900,
        logged: tuple[int, ...] | None = None,
        directions_by_name: bool = True,
        prior_strength: float = 8.0,
        smoothing: float = 0.5,
        drift: float = 1.0,
        z_cap: float = 2.5,
        max_gap_windows: int = 2,
        level_days: float = 3.0,
        trend_horizon_days: float = 7.0,
        unseen_day_scale: float = 2.0,
        ref_quantile: float = 0.99,
        holdout: float = 0.3,
        min_holdout_rows: int = 12,
    ) -> None:
        self.features = features
        self.two_sided = two_sided
        self.min_scale = min_scale
        self.relative_min_scale = relative_min_scale
        self.window_s = window_s
        self.logged = logged
        self.directions_by_name = directions_by_name
        self.prior_strength = prior_strength
        self.smoothing = smoothing
        self.drift = drift
        self.z_cap = z_cap
        self.max_gap_windows = max_gap_windows
        self.level_days = level_days
        self.trend_horizon_days = trend_horizon_days
        self.unseen_day_scale = unseen_day_scale
        self.ref_quantile = ref_quantile
        self.holdout = holdout
        self.min_holdout_rows = min_holdout_rows

    # -- parameters resolved per column -------------------------------------------------------
    def _logged_mask(self) -> np.ndarray:
        d = len(self.features)
        if self.logged is None:
            return np.array([f in LOGGED_FEATURES for f in self.features], dtype=bool)
        mask = np.zeros(d, dtype=bool)
        mask[list(self.logged)] = True
        return mask

    def _two_sided_mask(self) -> np.ndarray:
        mask = np.zeros(len(self.features), dtype=bool)
        mask[list(self.two_sided)] = True
        if self.directions_by_name:
            mask |= np.array([f in TWO_SIDED_NAMES for f in self.features], dtype=bool)
        return mask

    def _transform(self, X: np.ndarray) -> np.ndarray:
        T = np.array(X, dtype=float, copy=True)
        logged = self._logged_mask()
        T[:, logged] = np.log1p(np.clip(T[:, logged], 0.0, None))
        return T

    def _untransform(self, T: np.ndarray) -> np.ndarray:
        logged = self._logged_mask()
        return np.where(logged, np.expm1(np.where(logged, T, 0.0)), T)

    # -- fitting ------------------------------------------------------------------------------
    def _profile(
        self,
        X: np.ndarray,
        times_ns: np.ndarray,
        w: np.ndarray,
        *,
        anchor_end: bool = True,
        final: bool = True,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return (expected, scale), each 168 × d in transformed units.

        The level is the one of the ``level_days`` at the end of the rows (at their start with
        ``anchor_end=False``, to score rows that come before them).
        """
        d = X.shape[1]
        k = float(self.prior_strength)
        T = self._transform(X)
        fill = np.nanmedian(T, axis=0) if len(T) else np.zeros(d)
        T = np.where(np.isnan(T), np.nan_to_num(fill), T)
        slots = hour_of_week(times_ns)
        hod, dow = slots % 24, slots // 24
        glob = group_median(T, np.zeros(len(T), dtype=np.intp), 1, w)
        glob = np.nan_to_num(glob, nan=0.0)
        n_h = np.bincount(hod, weights=w, minlength=24)
        hour = shrink(group_median(T, hod, 24, w), n_h, glob, k)
        n_d = np.bincount(dow, weights=w, minlength=7)
        day = shrink(group_median(T - hour[hod], dow, 7, w), n_d, np.zeros((1, d)), k)
        all_slots = np.arange(WEEK_HOURS)
        prior = hour[all_slots % 24] + day[all_slots // 24]
        resid = T - prior[slots]
        n_s = np.bincount(slots, weights=w, minlength=WEEK_HOURS)
        med = np.nan_to_num(group_median(resid, slots, WEEK_HOURS, w), nan=0.0)
        kernel = neighbour_kernel(float(self.smoothing))
        n_eff = kernel @ n_s
        with np.errstate(invalid="ignore", divide="ignore"):
            smooth = np.where(n_eff[:, None] > 0, kernel @ (n_s[:, None] * med) / n_eff[:, None], 0)
        expected = prior + (n_eff / (n_eff + k))[:, None] * smooth
        dev = np.abs(T - expected[slots])
        resid = T - expected[slots]
        horizon = float(self.trend_horizon_days)
        self.slope_ = daily_trend(resid, times_ns, w) if horizon > 0 else np.zeros(d)
        span = float(self.level_days) * DAY_NS
        t = np.asarray(times_ns, dtype=np.int64)
        self.t_ref_ = int(t[-1] - span / 2 if anchor_end else t[0] + span / 2) if len(t) else 0
        resid = resid - self.slope_ * ((t - self.t_ref_) / DAY_NS)[:, None]
        expected = expected + level_offset(resid, times_ns, w, span, anchor_end, k)
        mad_all = group_median(dev, np.zeros(len(T), dtype=np.intp), 1, w) * MAD_TO_SIGMA
        mad_h = group_median(dev, hod, 24, w) * MAD_TO_SIGMA
        var = shrink(mad_h**2, n_h, np.nan_to_num(mad_all) ** 2, k)
        # a day of the week seen little (or never) is a guess: widen its scale accordingly (the
        # final fit only: on the calibration folds the held-out inflation measures this)
        unseen = float(self.unseen_day_scale) ** 2 - 1.0 if final else 0.0
        widen = np.sqrt(1.0 + max(unseen, 0.0) * k / (n_d + k))[all_slots // 24, None]
        scale = np.maximum(np.sqrt(var)[all_slots % 24] * widen, self._floor(expected))
        return expected, scale

    def _floor(self, expected: np.ndarray) -> np.ndarray:
        """Scale floor per slot (168 × d, transformed units) from the two floor parameters."""
        names = tuple(self.features)
        absolute = seasonal_min_scales(names) if self.min_scale is None else self.min_scale
        relative = (
            seasonal_relative_min_scales(names)
            if self.relative_min_scale is None
            else self.relative_min_scale
        )
        level = self._untransform(expected)
        return scale_floor(level, absolute, relative, self._logged_mask())

    def _expected_at(self, times_ns: np.ndarray) -> np.ndarray:
        """Expected transformed value per time and feature: slot, level and damped trend."""
        t = np.asarray(times_ns, dtype=np.int64)
        horizon = float(self.trend_horizon_days)
        days = np.clip((t - self.t_ref_) / DAY_NS, -horizon, horizon)
        return self.expected_[hour_of_week(t)] + self.slope_ * days[:, None]

    def _fit_profile(
        self,
        X: np.ndarray,
        times_ns: np.ndarray,
        w: np.ndarray,
        *,
        anchor_end: bool = True,
        final: bool = True,
    ) -> None:
        self.expected_, self.scale_ = self._profile(
            X, times_ns, w, anchor_end=anchor_end, final=final
        )
        self.rate_ = np.zeros(X.shape[1])  # failure rate of the ratio features, all windows
        if "events" in self.features and len(X):
            n = np.nan_to_num(X[:, list(self.features).index("events")])[:, None] * w[:, None]
            self.rate_ = (np.nansum(np.clip(X, 0, 1) * n, axis=0) + 0.5) / (n.sum() + 1.0)

    def fit(
        self, X: np.ndarray, times_ns: np.ndarray, sample_weight: np.ndarray | None = None
    ) -> Self:
        """Learn the baseline from ``X`` (n × d, rows sorted by ``times_ns``); return ``self``."""
        X = _matrix(X)
        times_ns = np.asarray(times_ns, dtype=np.int64)
        if X.shape[1] != len(self.features):
            raise ValueError(f"X has {X.shape[1]} columns for {len(self.features)} features")
        w = np.ones(len(X)) if sample_weight is None else np.asarray(sample_weight, float)
        keep = w > 0
        X, times_ns, w = X[keep], times_ns[keep], w[keep]
        self.n_features_in_ = X.shape[1]
        self.n_windows_ = float(w.sum())
        n = len(X)
        cut = round(n * float(self.holdout))
        folds: tuple[tuple[slice, slice], ...] = ()
        if cut >= self.min_holdout_rows and n - cut > cut:
            folds = ((slice(0, n - cut), slice(n - cut, n)), (slice(cut, n), slice(0, cut)))
        self.inflation_ = np.ones(X.shape[1])
        profiles, held_z = [], []
        for fit_rows, held in folds:  # the level comes from the days beside the held rows
            self._fit_profile(
                X[fit_rows],
                times_ns[fit_rows],
                w[fit_rows],
                anchor_end=fit_rows.start == 0,
                final=False,
            )
            profiles.append((self.expected_, self.scale_, self.rate_, self.slope_, self.t_ref_))
            held_z.append(self.z_scores(X[held], times_ns[held]))
        self.inflation_ = inflation(held_z, [w[h] for _, h in folds], X.shape[1])
        held_raw: list[np.ndarray] = []
        held_w: list[np.ndarray] = []
        for (expected, scale, rate, slope, t_ref), (fit_rows, held) in zip(
            profiles, folds, strict=True
        ):
            self.expected_, self.scale_, self.rate_ = expected, scale * self.inflation_, rate
            self.slope_, self.t_ref_ = slope, t_ref
            self._set_refs(X[fit_rows], times_ns[fit_rows])
            ctx = slice(max(held.start - CONTEXT_ROWS, 0), held.stop)  # as when scoring
            held_raw.append(self._raw(X[ctx], times_ns[ctx])[held.start - ctx.start :])
            held_w.append(w[held])
        self._fit_profile(X, times_ns, w)
        self.scale_ = self.scale_ * self.inflation_
        self._set_refs(X, times_ns)
        if not held_raw:  # too little history to hold any out: calibrate in sample
            held_raw, held_w = [self._raw(X, times_ns)], [w]
        self.calibration_rows_ = int(sum(len(r) for r in held_raw))
        self.calibrator_ = TailCalibrator.fit(
            np.concatenate(held_raw),
            scale_floor=CALIBRATION_FLOOR,
            sample_weight=np.concatenate(held_w),
        )
        return self

    def _set_refs(self, X: np.ndarray, times_ns: np.ndarray) -> None:
        """Training ``ref_quantile`` of each evidence kind (≥ 1 sigma), their common unit."""
        self.point_ref_, self.cusum_ref_ = 1.0, 1.0
        if len(X):
            point, shift = self._evidence(X, times_ns)
            q = float(self.ref_quantile)
            self.point_ref_ = max(float(np.quantile(point.max(axis=1), q)), 1.0)
            self.cusum_ref_ = max(float(np.quantile(shift.max(axis=1), q)), 1.0)

    # -- scoring ------------------------------------------------------------------------------
    def z_scores(self, X: np.ndarray, times_ns: np.ndarray) -> np.ndarray:
        """Signed robust residual per window and feature (n × d, sigmas; NaN where missing)."""
        _check_fitted(self, "expected_")
        X = _matrix(X)
        if len(X) != len(times_ns) or X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X is {X.shape} for {len(times_ns)} times, {self.n_features_in_} features"
            )
        slots = hour_of_week(times_ns)
        expected, scale = self._expected_at(times_ns), self.scale_[slots]
        ratio = np.array([f in RATIO_FEATURES for f in self.features], dtype=bool)
        z = (self._transform(X) - expected) / scale
        if ratio.any() and "events" in self.features:  # a count of failures out of n requests
            cols = np.flatnonzero(ratio)
            n = np.round(np.fmax(X[:, list(self.features).index("events")], 1.0))[:, None]
            p = np.clip(np.fmax(expected[:, cols], self.rate_[cols]), 1e-9, 1 - 1e-9)
            value = X[:, cols]
            k = np.round(np.clip(np.nan_to_num(value), 0.0, 1.0) * n)
            exact = binomial_z(k, n, p) / self.inflation_[cols]
            z[:, cols] = np.where(np.isnan(value), np.nan, exact)
        return z

    def _evidence(self, X: np.ndarray, times_ns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(pointwise, sustained) evidence per window and feature, n × d each, sigmas ≥ 0."""
        z = self.z_scores(X, times_ns)
        two = self._two_sided_mask()
        up = z
        down = np.where(two, -z, np.nan)
        point = np.nan_to_num(np.fmax(up, down), nan=0.0).clip(0.0, None)
        seg = segment_ids(times_ns, int(self.window_s), int(self.max_gap_windows))
        kw = {"drift": float(self.drift), "cap": float(self.z_cap)}
        shift = np.fmax(cusum(up, seg, **kw), np.nan_to_num(cusum(down, seg, **kw), nan=0.0))
        return point, shift

    def _feature_evidence(self, X: np.ndarray, times_ns: np.ndarray) -> np.ndarray:
        point, shift = self._evidence(X, times_ns)
        return np.maximum(point / self.point_ref_, shift / self.cusum_ref_)

    def _raw(self, X: np.ndarray, times_ns: np.ndarray) -> np.ndarray:
        if len(X) == 0:
            return np.zeros(0)
        return self._feature_evidence(X, times_ns).max(axis=1)

    def raw_score_samples(self, X: np.ndarray, times_ns: np.ndarray) -> np.ndarray:
        """Raw evidence per window: multiples of the training reference; higher = more unusual."""
        _check_fitted(self, "calibrator_")
        return self._raw(_matrix(X), times_ns)

    def score_samples(self, X: np.ndarray, times_ns: np.ndarray) -> np.ndarray:
        """Calibrated score per window in [0, 1], higher = more unusual.

        ``1 - score`` is a tail probability under held-out training windows. Rows may start with
        context windows (recent history) so the level-shift part sees what came before.
        """
        return self.calibrator_.transform(self.raw_score_samples(X, times_ns))

    def explain(
        self, X: np.ndarray, times_ns: np.ndarray
    ) -> list[list[tuple[str, float, float, float]]]:
        """Per row: ``(feature, value, expected_for_slot, robust_deviation)``, strongest first.

        ``value`` and ``expected`` are in feature units; ``robust_deviation`` is the signed
        residual in robust sigmas. Features are ordered by their evidence (pointwise or
        sustained), the one that drives the score first.
        """
        _check_fitted(self, "calibrator_")
        X = _matrix(X)
        z = self.z_scores(X, times_ns)
        expected = self._untransform(self._expected_at(times_ns))
        order = np.argsort(-self._feature_evidence(X, times_ns), axis=1, kind="stable")
        names = list(self.features)
        return [
            [(names[j], float(X[i, j]), float(expected[i, j]), float(z[i, j])) for j in row]
            for i, row in enumerate(order.tolist())
        ]

    # -- persistence --------------------------------------------------------------------------
    def get_params(self) -> dict[str, Any]:
        """Constructor parameters as plain data (tuples become lists)."""
        out: dict[str, Any] = {}
        for name in _PARAMS:
            value = getattr(self, name)
            out[name] = list(value) if isinstance(value, tuple) else value
        return out

    def to_state(self) -> dict[str, Any]:
        """Parameters, fitted arrays and the calibrator, as plain data (arrays, numbers, lists)."""
        _check_fitted(self, "calibrator_")
        return {
            "params": self.get_params(),
            "fitted": {
                "expected_": np.asarray(self.expected_, float),
                "scale_": np.asarray(self.scale_, float),
                "point_ref_": float(self.point_ref_),
                "cusum_ref_": float(self.cusum_ref_),
                "inflation_": np.asarray(self.inflation_, float),
                "rate_": np.asarray(self.rate_, float),
                "slope_": np.asarray(self.slope_, float),
                "t_ref_": int(self.t_ref_),
                "n_features_in_": int(self.n_features_in_),
                "n_windows_": float(self.n_windows_),
                "calibration_rows_": int(self.calibration_rows_),
            },
            "calibrator": self.calibrator_.to_state(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        """Rebuild a fitted detector from :meth:`to_state` output (no code is loaded)."""
        params = dict(state["params"])
        for name in ("features", "two_sided", "min_scale", "relative_min_scale", "logged"):
            if params.get(name) is not None:
                params[name] = tuple(params[name])
        det = cls(**params)
        fitted = state["fitted"]
        det.expected_ = np.asarray(fitted["expected_"], dtype=float)
        det.scale_ = np.asarray(fitted["scale_"], dtype=float)
        det.point_ref_ = float(fitted["point_ref_"])
        det.cusum_ref_ = float(fitted["cusum_ref_"])
        det.inflation_ = np.asarray(fitted["inflation_"], dtype=float)
        det.rate_ = np.asarray(fitted["rate_"], dtype=float)
        det.slope_ = np.asarray(fitted["slope_"], dtype=float)
        det.t_ref_ = int(fitted["t_ref_"])
        det.n_features_in_ = int(fitted["n_features_in_"])
        det.n_windows_ = float(fitted["n_windows_"])
        det.calibration_rows_ = int(fitted["calibration_rows_"])
        det.calibrator_ = TailCalibrator.from_state(state["calibrator"])
        return det


_PARAMS = (
    "features",
    "two_sided",
    "min_scale",
    "relative_min_scale",
    "window_s",
    "logged",
    "directions_by_name",
    "prior_strength",
    "smoothing",
    "drift",
    "z_cap",
    "max_gap_windows",
    "level_days",
    "trend_horizon_days",
    "unseen_day_scale",
    "ref_quantile",
    "holdout",
    "min_holdout_rows",
)
