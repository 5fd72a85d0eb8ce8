"""Feature building: normalized event frames and per-window features.

``events_frame`` turns raw event documents into a typed, UTC-sorted frame; ``window_features``
aggregates an entity's frame over its **active** windows only (a window with no events is never
materialized). A feature whose source field is absent from every event of a window is NaN, so
metric-style streams (timestamp + latency_ms, say) simply yield fewer usable features.
Per-login context lives in :mod:`workers.engine.context` and is re-exported here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .context import is_login_type, login_context

__all__ = [
    "CATEGORICAL_FIELDS",
    "NUMERIC_FIELDS",
    "TWO_SIDED_FEATURES",
    "WINDOW_FEATURES",
    "events_frame",
    "feature_matrix",
    "hour_rarity",
    "login_context",
    "min_scales",
    "parse_timestamps",
    "relative_min_scales",
    "window_features",
]

CATEGORICAL_FIELDS: tuple[str, ...] = (
    "type", "ip_address", "country", "region", "city", "asn", "user_agent", "endpoint", "tz",
)  # fmt: skip
NUMERIC_FIELDS: tuple[str, ...] = (
    "status_code", "bytes_sent", "latency_ms", "utc_offset_minutes",
)  # fmt: skip
FAILED_LOGIN_CODES = (401, 403)

WINDOW_FEATURES: tuple[str, ...] = (
    "events", "logins", "failed_logins", "failed_login_ratio",
    "status_4xx", "status_5xx", "ratio_4xx", "ratio_5xx",
    "bytes_sum", "bytes_max", "latency_mean", "latency_p95",
    "distinct_endpoints", "distinct_ips", "new_endpoints",
    "hour_sin", "hour_cos", "hour_rarity", "weekday",
)  # fmt: skip
"""Window feature columns, in model order."""

COUNT_FEATURES: frozenset[str] = frozenset({
    "events", "logins", "failed_logins", "status_4xx", "status_5xx",
    "distinct_endpoints", "distinct_ips", "new_endpoints",
})  # fmt: skip
RATIO_FEATURES: frozenset[str] = frozenset({"failed_login_ratio", "ratio_4xx", "ratio_5xx"})
MIN_SCALE: dict[str, float] = {
    **dict.fromkeys(COUNT_FEATURES, 1.0),
    **dict.fromkeys(RATIO_FEATURES, 0.25),
    "hour_sin": 0.1, "hour_cos": 0.1, "hour_rarity": 1.0, "weekday": 0.5,
}  # fmt: skip
"""Smallest robust scale per feature in its own units: one extra count, a quarter of a ratio."""
RELATIVE_MIN_SCALE: dict[str, float] = {
    "bytes_sum": 0.5, "bytes_max": 0.5, "latency_mean": 0.25, "latency_p95": 0.25,
}  # fmt: skip
"""Smallest robust scale as a share of the median (default 0.1): bytes are heavy-tailed."""


def min_scales(features: Sequence[str]) -> tuple[float, ...]:
    """Return :data:`MIN_SCALE` for each feature (0 where none is set)."""
    return tuple(MIN_SCALE.get(f, 0.0) for f in features)


def relative_min_scales(features: Sequence[str]) -> tuple[float, ...]:
    """Return :data:`RELATIVE_MIN_SCALE` for each feature (0.1 where none is set)."""
    return tuple(RELATIVE_MIN_SCALE.get(f, 0.1) for f in features)


TWO_SIDED_FEATURES: frozenset[str] = frozenset({"hour_sin", "hour_cos", "weekday"})
"""Features where a low value is as unusual as a high one; all others only count upwards."""


def window_timedelta(window: str) -> pd.Timedelta:
    """Return the fixed length of a pandas offset alias such as ``15min`` (ValueError if not)."""
    offset = pd.tseries.frequencies.to_offset(window)
    return pd.Timedelta(offset.nanos, unit="ns")


def parse_timestamps(values: pd.Series) -> pd.Series:
    """Parse ISO 8601 strings (any offset) or epoch seconds into UTC timestamps (NaT if bad)."""
    numeric = pd.to_numeric(values, errors="coerce")
    is_num = numeric.notna() & values.map(lambda v: not isinstance(v, str) or _is_number(v))
    out = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, UTC]")
    if is_num.any():
        out[is_num] = pd.to_datetime(numeric[is_num], unit="s", utc=True, errors="coerce")
    rest = ~is_num & values.notna()
    if rest.any():
        out[rest] = pd.to_datetime(
            values[rest].astype(str), utc=True, format="ISO8601", errors="coerce"
        )
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def events_frame(
    events: Iterable[Mapping[str, Any]], entity_field: str = "user_id"
) -> pd.DataFrame:
    """Return one row per event: ``event_id``, ``entity``, UTC ``timestamp`` and known fields.

    Rows are sorted by (timestamp, event_id). Numeric fields are coerced to float (NaN when
    missing or unparseable); ``state`` is accepted for ``region``. Events whose timestamp cannot
    be parsed are dropped and counted in ``frame.attrs["dropped_events"]``.
    """
    rows = list(events)
    raw = pd.DataFrame.from_records(rows) if rows else pd.DataFrame()
    n = len(raw)

    def column(name: str) -> pd.Series:
        if name in raw.columns:
            return raw[name]
        return pd.Series([None] * n, index=raw.index, dtype=object)

    region = column("region")
    if "state" in raw.columns:
        region = region.where(region.notna(), raw["state"])
    frame = pd.DataFrame(
        {
            "event_id": column("_id").astype(object),
            "entity": column(entity_field).astype(object),
            "timestamp": parse_timestamps(column("timestamp")),
        },
        index=raw.index,
    )
    for name in CATEGORICAL_FIELDS:
        values = region if name == "region" else column(name)
        frame[name] = pd.Series(
            [_clean_category(v) for v in values], index=frame.index, dtype=object
        )
    for name in NUMERIC_FIELDS:
        frame[name] = pd.to_numeric(column(name), errors="coerce").astype(float)
    bad = frame["timestamp"].isna()
    frame = frame.loc[~bad]
    frame["event_id"] = pd.Series(
        [None if pd.isna(v) else str(v) for v in frame["event_id"]], index=frame.index, dtype=object
    )
    frame = frame.sort_values(["timestamp", "event_id"], kind="stable", na_position="last")
    frame = frame.reset_index(drop=True)
    frame.attrs["dropped_events"] = int(bad.sum())
    return frame


def _clean_category(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None


def window_features(
    frame: pd.DataFrame, window: str = "15min", known_endpoints: Iterable[str] = ()
) -> pd.DataFrame:
    """Aggregate one entity's events over its active windows.

    Returns one row per non-empty window with ``window_start``, ``window_end`` (UTC),
    ``event_ids`` (list) and the :data:`WINDOW_FEATURES` columns (floats). ``new_endpoints``
    counts endpoints neither in ``known_endpoints`` nor seen earlier in ``frame``.
    """
    columns = ["window_start", "window_end", "event_ids", *WINDOW_FEATURES]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    width = window_timedelta(window)
    f = frame.assign(window_start=frame["timestamp"].dt.floor(width))
    is_login = pd.Series([is_login_type(t) for t in f["type"]], index=f.index, dtype=bool)
    status = f["status_code"]
    known = set(known_endpoints)
    first_seen = f["endpoint"].notna() & ~f["endpoint"].duplicated() & ~f["endpoint"].isin(known)
    has_type = f["type"].notna()
    f = f.assign(
        _login=is_login.astype(float).where(has_type),
        _failed=(is_login & status.isin(FAILED_LOGIN_CODES)).astype(float).where(has_type),
        _4xx=((status >= 400) & (status < 500)).astype(float).where(status.notna()),
        _5xx=(status >= 500).astype(float).where(status.notna()),
        _new=first_seen.astype(float).where(f["endpoint"].notna()),
    )
    g = f.groupby("window_start", sort=True)
    out = pd.DataFrame(
        {
            "event_ids": g["event_id"].agg(list),
            "events": g.size().astype(float),
            "logins": g["_login"].sum(min_count=1),
            "failed_logins": g["_failed"].sum(min_count=1),
            "status_4xx": g["_4xx"].sum(min_count=1),
            "status_5xx": g["_5xx"].sum(min_count=1),
            "n_status": g["_4xx"].count(),
            "bytes_sum": g["bytes_sent"].sum(min_count=1),
            "bytes_max": g["bytes_sent"].max(),
            "latency_mean": g["latency_ms"].mean(),
            "latency_p95": g["latency_ms"].quantile(0.95),
            "distinct_endpoints": g["endpoint"].nunique().astype(float),
            "n_endpoint": g["endpoint"].count(),
            "distinct_ips": g["ip_address"].nunique().astype(float),
            "n_ip": g["ip_address"].count(),
            "new_endpoints": g["_new"].sum(min_count=1),
        }
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        out["failed_login_ratio"] = (out["failed_logins"] / out["logins"]).where(
            out["logins"] > 0, 0.0
        )
        out.loc[out["logins"].isna(), "failed_login_ratio"] = np.nan
        out["ratio_4xx"] = (out["status_4xx"] / out["n_status"]).where(out["n_status"] > 0)
        out["ratio_5xx"] = (out["status_5xx"] / out["n_status"]).where(out["n_status"] > 0)
    out.loc[out["n_endpoint"] == 0, "distinct_endpoints"] = np.nan
    out.loc[out["n_ip"] == 0, "distinct_ips"] = np.nan
    starts = pd.DatetimeIndex(out.index)
    hour = starts.hour + starts.minute / 60.0
    out["hour_sin"] = np.sin(2 * np.pi * hour / 24.0)
    out["hour_cos"] = np.cos(2 * np.pi * hour / 24.0)
    out["hour_rarity"] = np.nan  # needs the entity's hour profile: see hour_rarity()
    out["weekday"] = starts.day_of_week.astype(float)
    out["window_start"] = starts
    out["window_end"] = starts + width
    out = out.reset_index(drop=True)
    out[list(WINDOW_FEATURES)] = out[list(WINDOW_FEATURES)].astype(float)
    return out[columns]


def feature_matrix(
    windows: pd.DataFrame, features: Sequence[str], fill: Mapping[str, float]
) -> np.ndarray:
    """Return ``windows[features]`` as a float array with NaN replaced by ``fill[feature]``."""
    block = windows.loc[:, list(features)].astype(float)
    return block.fillna(value=dict(fill)).to_numpy(dtype=float)


HOUR_PSEUDOCOUNT = 0.5
HOUR_SIGMA = 1.5
_DIST = np.minimum(np.arange(24), 24 - np.arange(24))
HOUR_KERNEL = np.exp(-(_DIST**2) / (2 * HOUR_SIGMA**2))
"""Circular Gaussian kernel over hours (sigma 1.5 h): 2 h away counts 41%, 5 h away 0.4%."""


def hour_rarity(
    starts: pd.Series, hour_counts: Sequence[float], *, leave_one_out: bool = False
) -> np.ndarray:
    """Return how rare each window's UTC hour is in ``hour_counts`` (24 window counts).

    ``log(1/24) - log(p)`` where ``p`` is the share of history near that hour (counts smoothed
    with a circular Gaussian kernel, sigma 1.5 h): 0 for an average hour, higher = rarer (more
    unusual). ``leave_one_out`` removes each window's own count (scoring training windows).
    """
    counts = np.asarray(hour_counts, dtype=float)
    smooth = np.array([np.dot(counts, np.roll(HOUR_KERNEL, h)) for h in range(24)])
    hours = pd.DatetimeIndex(starts).hour.to_numpy()
    own = smooth[hours] - (1.0 if leave_one_out else 0.0)
    total = smooth.sum() - (HOUR_KERNEL.sum() if leave_one_out else 0.0)
    p = (np.maximum(own, 0.0) + HOUR_PSEUDOCOUNT) / (max(total, 0.0) + 24 * HOUR_PSEUDOCOUNT)
    return np.asarray(np.log(1.0 / 24.0) - np.log(p), dtype=float)
