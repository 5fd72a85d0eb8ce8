"""Per-group reductions over contiguous groups of a sorted array (numpy only, NaN-aware).

A grouping is the array of group ``starts`` (first row of each group, ascending, first = 0)
over ``n`` rows; :func:`group_starts` derives it from one or more key arrays that are already
sorted so that equal keys are adjacent. Every reduction returns one float per group, NaN where
the group has no non-NaN value (pandas ``sum(min_count=1)``, ``mean``, ``max``, ``quantile``).
"""

from __future__ import annotations

import numpy as np


def group_starts(*keys: np.ndarray) -> np.ndarray:
    """Start index of each run of equal consecutive key tuples."""
    n = len(keys[0])
    if n == 0:
        return np.zeros(0, dtype=np.intp)
    change = np.zeros(n, dtype=bool)
    change[0] = True
    for key in keys:
        change[1:] |= key[1:] != key[:-1]
    return np.flatnonzero(change)


def group_ids(starts: np.ndarray, n: int) -> np.ndarray:
    """Group number of each of the ``n`` rows."""
    ids = np.zeros(n, dtype=np.intp)
    if len(starts) > 1:
        ids[starts[1:]] = 1
    return np.cumsum(ids)


def sizes(starts: np.ndarray, n: int) -> np.ndarray:
    """Rows per group."""
    return np.diff(np.append(starts, n))


def valid_count(x: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Non-NaN values per group."""
    if len(starts) == 0:
        return np.zeros(0)
    return np.add.reduceat((~np.isnan(x)).astype(float), starts)


def nansum(x: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Sum per group, NaN when the group has no value."""
    if len(starts) == 0:
        return np.zeros(0)
    total = np.add.reduceat(np.nan_to_num(x, nan=0.0), starts)
    return np.where(valid_count(x, starts) > 0, total, np.nan)


def nanmean(x: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Mean per group, NaN when the group has no value."""
    if len(starts) == 0:
        return np.zeros(0)
    count = valid_count(x, starts)
    total = np.add.reduceat(np.nan_to_num(x, nan=0.0), starts)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(count > 0, total / count, np.nan)


def nanmax(x: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Maximum per group, NaN when the group has no value."""
    if len(starts) == 0:
        return np.zeros(0)
    return np.fmax.reduceat(x, starts)


def nanquantile(x: np.ndarray, starts: np.ndarray, q: float) -> np.ndarray:
    """Quantile ``q`` per group with linear interpolation (pandas' default), NaN-skipping."""
    n, g = len(x), len(starts)
    if g == 0:
        return np.zeros(0)
    gid = group_ids(starts, n)
    order = np.lexsort((x, gid))  # within each group ascending, NaN last
    ordered = x[order]
    count = valid_count(x, starts).astype(np.intp)
    pos = q * np.maximum(count - 1, 0)
    lo = np.floor(pos).astype(np.intp)
    hi = np.ceil(pos).astype(np.intp)
    has = count > 0
    lo_v = np.where(has, ordered[np.where(has, starts + lo, 0)], np.nan)
    hi_v = np.where(has, ordered[np.where(has, starts + hi, 0)], np.nan)
    return lo_v + (hi_v - lo_v) * (pos - lo)


def distinct_count(codes: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Distinct non-negative codes per group (``-1`` = missing, not counted)."""
    g = len(starts)
    if g == 0:
        return np.zeros(0)
    gid = group_ids(starts, len(codes))
    valid = codes >= 0
    width = int(codes.max(initial=0)) + 1
    pairs = np.unique(gid[valid] * width + codes[valid])
    return np.bincount(pairs // width, minlength=g).astype(float)


def first_occurrence(codes: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """True at the first row of each (owner, code) pair in row order; False where code < 0."""
    out = np.zeros(len(codes), dtype=bool)
    valid = np.flatnonzero(codes >= 0)
    if len(valid) == 0:
        return out
    width = int(codes.max()) + 1
    keys = owner[valid].astype(np.int64) * width + codes[valid]
    _, first = np.unique(keys, return_index=True)
    out[valid[first]] = True
    return out
