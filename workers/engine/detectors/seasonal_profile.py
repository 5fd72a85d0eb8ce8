"""Building blocks of the seasonal baseline: hour-of-week slots, grouped weighted medians,
shrinkage, neighbour smoothing and the held-out scale inflation. Pure numpy, no row loops."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.special import betainc, gammaln, ndtri

from ..features import COUNT_FEATURES, RATIO_FEATURES
from .robust_zscore import MAD_TO_SIGMA

__all__ = [
    "DAY_NS",
    "HOUR_NS",
    "MAX_INFLATION",
    "SEASONAL_MIN_SCALE",
    "SEASONAL_RELATIVE_MIN_SCALE",
    "TWO_SIDED_NAMES",
    "WEEK_HOURS",
    "binomial_z",
    "daily_trend",
    "group_median",
    "hour_of_week",
    "inflation",
    "level_offset",
    "neighbour_kernel",
    "scale_floor",
    "seasonal_min_scales",
    "seasonal_relative_min_scales",
    "shrink",
]

MAX_INFLATION = 10.0
HOUR_NS = 3_600_000_000_000
DAY_NS = 24 * HOUR_NS
WEEK_HOURS = 168
TWO_SIDED_NAMES: frozenset[str] = frozenset({"events"})
"""Features where a drop is as unusual as a spike (traffic); all others count upwards only."""
SEASONAL_MIN_SCALE: dict[str, float] = {
    **dict.fromkeys(COUNT_FEATURES, 1.0),
    **dict.fromkeys(RATIO_FEATURES, 0.01),
}
"""Smallest scale in feature units: one count, one percentage point of a ratio."""
SEASONAL_RELATIVE_MIN_SCALE: dict[str, float] = {
    "events": 0.05,
    "bytes_sum": 0.1,
    "bytes_max": 0.1,
    "latency_mean": 0.05,
    "latency_p95": 0.05,
}
"""Smallest scale as a share of the slot's expected value (default 0.05)."""


def seasonal_min_scales(features: tuple[str, ...]) -> tuple[float, ...]:
    """Default ``min_scale`` per feature (feature units; 0 where none is set)."""
    return tuple(SEASONAL_MIN_SCALE.get(f, 0.0) for f in features)


def seasonal_relative_min_scales(features: tuple[str, ...]) -> tuple[float, ...]:
    """Default ``relative_min_scale`` per feature (share of the expected value)."""
    return tuple(SEASONAL_RELATIVE_MIN_SCALE.get(f, 0.05) for f in features)


def scale_floor(
    level: np.ndarray,
    absolute: Sequence[float],
    relative: Sequence[float],
    logged: np.ndarray,
) -> np.ndarray:
    """Smallest scale per row and feature, in transformed units (> 0).

    In feature units the floor is ``max(absolute, relative · |level|)``. On the ``log1p`` scale
    of a ``logged`` column that step at level ``mu`` is ``log1p(mu + step) - log1p(mu)``.
    """
    step = np.maximum(np.asarray(absolute, float), np.asarray(relative, float) * np.abs(level))
    mu = np.clip(level, 0.0, None)
    in_log = np.log1p(mu + step) - np.log1p(mu)
    return np.maximum(np.where(logged, in_log, step), 1e-6)


def hour_of_week(times_ns: np.ndarray) -> np.ndarray:
    """Return the UTC hour-of-week slot (0 = Monday 00:00-01:00, 167 = Sunday 23:00) per time."""
    hours = np.asarray(times_ns, dtype=np.int64) // HOUR_NS
    return ((hours + 72) % WEEK_HOURS).astype(np.intp)  # 1970-01-01 was a Thursday


def group_median(V: np.ndarray, groups: np.ndarray, n_groups: int, w: np.ndarray) -> np.ndarray:
    """Weighted median of each column of ``V`` per group (n_groups × d; NaN for empty groups).

    ``V`` must be finite; ``w`` positive. The median of an even count is the midpoint.
    """
    n, d = V.shape
    out = np.full((n_groups, d), np.nan)
    if n == 0:
        return out
    wsum = np.bincount(groups, weights=w, minlength=n_groups)
    counts = np.bincount(groups, minlength=n_groups)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    last = first + counts - 1
    target = np.concatenate([[0.0], np.cumsum(wsum)[:-1]]) + wsum / 2.0
    valid = counts > 0
    # one sort for every column: the group number, then the value rescaled into [0, 1)
    low, high = V.min(axis=0), V.max(axis=0)
    key = groups[:, None] + 0.5 * (V - low) / np.where(high > low, high - low, 1.0)
    order = np.argsort(key, axis=0, kind="stable")
    cw = np.cumsum(w[order], axis=0)
    sorted_v = np.take_along_axis(V, order, axis=0)
    for j in range(d):  # searchsorted is 1-D: a loop over features, never rows
        lo = np.clip(np.searchsorted(cw[:, j], target * (1 - 1e-12), side="left"), first, last)
        hi = np.clip(np.searchsorted(cw[:, j], target * (1 + 1e-12), side="right"), first, last)
        out[valid, j] = 0.5 * (sorted_v[lo[valid], j] + sorted_v[hi[valid], j])
    return out


def shrink(med: np.ndarray, n: np.ndarray, target: np.ndarray, k: float) -> np.ndarray:
    """``(n·med + k·target) / (n + k)`` per row, ``target`` where a group is empty."""
    n = n[:, None]
    own = np.where(np.isnan(med), target, med)
    return (n * own + k * target) / (n + k)


def inflation(held_z: list[np.ndarray], weights: list[np.ndarray], d: int) -> np.ndarray:
    """Per feature, how much wider held-out residuals are than the fitted scale says (≥ 1).

    ``1.4826 · median |z|`` of the held-out residuals (level errors included), capped at
    ``MAX_INFLATION``; 1 without held-out rows.
    """
    if not held_z:
        return np.ones(d)
    z = np.abs(np.concatenate(held_z))
    w = np.concatenate(weights)
    out = np.ones(d)
    for j in range(d):
        ok = ~np.isnan(z[:, j])
        if ok.any():
            med = group_median(z[ok, j : j + 1], np.zeros(int(ok.sum()), np.intp), 1, w[ok])
            out[j] = float(med[0, 0]) * MAD_TO_SIGMA
    return np.clip(out, 1.0, MAX_INFLATION)


def neighbour_kernel(smoothing: float) -> np.ndarray:
    """168 × 168 circular weights: a slot keeps ``1 - smoothing``, each neighbour half the rest."""
    eye = np.eye(WEEK_HOURS)
    return (1 - smoothing) * eye + smoothing / 2 * (np.roll(eye, 1, 1) + np.roll(eye, -1, 1))


def binomial_z(k: np.ndarray, n: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Normal quantile of the mid-p upper tail of ``k`` failures out of ``n`` at rate ``p``.

    ``tail = P(X > k) + P(X = k) / 2`` for ``X ~ Binomial(n, p)``; returns ``-ndtri(tail)``:
    about 0 for a typical count, large and positive for too many failures, negative for too
    few. One failure out of 5 requests at ``p = 0.003`` is about +2; 30 of 100 is off the chart.
    """
    k, n, p = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (k, n, p)))
    k = np.clip(k, 0.0, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        above = np.where(k < n, betainc(k + 1.0, np.maximum(n - k, 1e-12), p), 0.0)
        log_pmf = (
            gammaln(n + 1.0)
            - gammaln(k + 1.0)
            - gammaln(n - k + 1.0)
            + k * np.log(p)
            + (n - k) * np.log1p(-p)
        )
    tail = np.clip(above + 0.5 * np.exp(log_pmf), 1e-300, 1.0 - 1e-12)  # finite: |z| <= 37
    return -ndtri(tail)


def daily_trend(resid: np.ndarray, times_ns: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Theil-Sen slope of the daily median residuals per feature (units per day).

    Days with fewer than 24 windows (a quarter of a day of 15-min windows) do not count; with
    fewer than 5 such days the slope is 0.
    """
    d = resid.shape[1]
    if len(resid) == 0:
        return np.zeros(d)
    t = np.asarray(times_ns, dtype=np.int64)
    day = ((t - t[0]) // DAY_NS).astype(np.intp)
    n_days = int(day[-1]) + 1
    ok = np.bincount(day, weights=w, minlength=n_days) >= 24
    if ok.sum() < 5:
        return np.zeros(d)
    med = group_median(resid, day, n_days, w)[ok]
    x = np.flatnonzero(ok).astype(float)
    i, j = np.triu_indices(len(x), 1)
    return np.median((med[j] - med[i]) / (x[j] - x[i])[:, None], axis=0)


def level_offset(
    resid: np.ndarray,
    times_ns: np.ndarray,
    w: np.ndarray,
    span_ns: float,
    anchor_end: bool,
    k: float,
) -> np.ndarray:
    """Median residual of the ``span_ns`` at the end (or start) of the rows, shrunk to 0 (1 × d).

    A service that grows (or slows) over weeks is compared with its recent level, not with the
    median of its whole history. ``k`` pseudo-windows pull the offset toward 0.
    """
    d = resid.shape[1]
    if span_ns <= 0 or len(resid) == 0:
        return np.zeros((1, d))
    t = np.asarray(times_ns, dtype=np.int64)
    near = t >= t[-1] - span_ns if anchor_end else t <= t[0] + span_ns
    med = group_median(resid[near], np.zeros(int(near.sum()), dtype=np.intp), 1, w[near])
    return shrink(med, np.array([w[near].sum()]), np.zeros((1, d)), k)
