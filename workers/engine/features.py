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

from . import grouped
from .context import is_login_type, login_context
from .grouped import first_occurrence, group_starts

__all__ = [
    "CATEGORICAL_FIELDS",
    "NUMERIC_FIELDS",
    "TWO_SIDED_FEATURES",
    "WINDOW_FEATURES",
    "events_frame",
    "feature_matrix",
    "login_context",
    "min_scales",
    "relative_min_scales",
    "window_features",
    "window_table",
]

CATEGORICAL_FIELDS: tuple[str, ...] = (
    "type",
    "ip_address",
    "country",
    "region",
    "city",
    "asn",
    "user_agent",
    "endpoint",
    "tz",
)
NUMERIC_FIELDS: tuple[str, ...] = (
    "status_code",
    "bytes_sent",
    "latency_ms",
    "utc_offset_minutes",
)
FAILED_LOGIN_CODES = (401, 403)

WINDOW_FEATURES: tuple[str, ...] = (
    "events",
    "logins",
    "failed_logins",
    "failed_login_ratio",
    "status_4xx",
    "status_5xx",
    "ratio_4xx",
    "ratio_5xx",
    "bytes_sum",
    "bytes_max",
    "latency_mean",
    "latency_p95",
    "distinct_endpoints",
    "distinct_ips",
    "new_endpoints",
)
"""Window feature columns, in model order. Time of day is not a feature: the time-of-day model
(:mod:`workers.engine.detectors.time_of_day`) scores it in the entity's local time."""

COUNT_FEATURES: frozenset[str] = frozenset(
    {
        "events",
        "logins",
        "failed_logins",
        "status_4xx",
        "status_5xx",
        "distinct_endpoints",
        "distinct_ips",
        "new_endpoints",
    }
)
RATIO_FEATURES: frozenset[str] = frozenset({"failed_login_ratio", "ratio_4xx", "ratio_5xx"})
MIN_SCALE: dict[str, float] = {
    **dict.fromkeys(COUNT_FEATURES, 1.0),
    **dict.fromkeys(RATIO_FEATURES, 0.25),
}
"""Smallest robust scale per feature in its own units: one extra count, a quarter of a ratio."""
RELATIVE_MIN_SCALE: dict[str, float] = {
    "bytes_sum": 0.5,
    "bytes_max": 0.5,
    "latency_mean": 0.25,
    "latency_p95": 0.25,
}
"""Smallest robust scale as a share of the median (default 0.1): bytes are heavy-tailed."""


def min_scales(features: Sequence[str]) -> tuple[float, ...]:
    """Return :data:`MIN_SCALE` for each feature (0 where none is set)."""
    return tuple(MIN_SCALE.get(f, 0.0) for f in features)


def relative_min_scales(features: Sequence[str]) -> tuple[float, ...]:
    """Return :data:`RELATIVE_MIN_SCALE` for each feature (0.1 where none is set)."""
    return tuple(RELATIVE_MIN_SCALE.get(f, 0.1) for f in features)


TWO_SIDED_FEATURES: frozenset[str] = frozenset()
"""Features where a low value is as unusual as a high one; all others only count upwards."""
Z_FEATURES: tuple[str, ...] = tuple(f for f in WINDOW_FEATURES if f not in RATIO_FEATURES)
"""Features of the z-score detector: ratios are scored as binomial rates instead
(:mod:`workers.engine.detectors.rates`), where one failed request of one is weak evidence."""
FEATURE_GROUPS: dict[str, str] = {
    "events": "volume",
    "logins": "volume",
    "distinct_endpoints": "breadth",
    "distinct_ips": "breadth",
    "new_endpoints": "breadth",
    "failed_logins": "failures",
    "status_4xx": "failures",
    "status_5xx": "failures",
    "bytes_sum": "bytes",
    "bytes_max": "bytes",
    "latency_mean": "latency",
    "latency_p95": "latency",
}
"""Correlated features share a group; the z-score detector corrects for groups, not features."""
LOGGED_FEATURES: frozenset[str] = COUNT_FEATURES | {
    "bytes_sum",
    "bytes_max",
    "latency_mean",
    "latency_p95",
}
"""Features modeled on the ``log1p`` scale by the z-score detector (a doubling is one step)."""
Z_MIN_SCALE: dict[str, float] = {
    **dict.fromkeys(COUNT_FEATURES, 0.35),
    **dict.fromkeys(RATIO_FEATURES, 0.1),
    "bytes_sum": 0.5,
    "bytes_max": 0.5,
    "latency_mean": 0.15,
    "latency_p95": 0.15,
}
"""Smallest scale per feature in the z-score detector's units (log1p for logged features)."""


def window_timedelta(window: str) -> pd.Timedelta:
    """Return the fixed length of a pandas offset alias such as ``15min`` (ValueError if not)."""
    offset = pd.tseries.frequencies.to_offset(window)
    return pd.Timedelta(offset.nanos, unit="ns")


NAT_NS = np.iinfo(np.int64).min
_US_LIMIT = np.iinfo(np.int64).max // 1000  # microseconds that still fit in nanoseconds


def timestamps_ns(values: list[Any]) -> np.ndarray:
    """Epoch nanoseconds of ISO 8601 strings or epoch seconds; ``NAT_NS`` where unparseable."""
    out = np.full(len(values), NAT_NS, dtype=np.int64)
    iso = np.array(
        [type(v) is str and v[4:5] == "-" and v[:4].isdigit() for v in values], dtype=bool
    )
    if iso.any():
        out[iso] = _iso_ns([v for v, ok in zip(values, iso, strict=True) if ok])
    rest = np.flatnonzero(~iso)
    if len(rest):
        out[rest] = _other_ns(pd.Series([values[i] for i in rest], dtype=object))
    return out


def _iso_ns(texts: list[str]) -> np.ndarray:
    parsed = pd.to_datetime(texts, utc=True, format="ISO8601", errors="coerce")
    return _as_ns(pd.DatetimeIndex(parsed))


def _as_ns(stamps: pd.DatetimeIndex) -> np.ndarray:
    """Nanoseconds of any-unit timestamps; ``NAT_NS`` where missing or beyond year 2262."""
    if stamps.unit == "ns":
        return np.asarray(stamps.asi8, dtype=np.int64).copy()
    micros = stamps.as_unit("us").asi8
    ok = (micros != NAT_NS) & (np.abs(micros) < _US_LIMIT)
    return np.where(ok, micros * 1000, NAT_NS)


def _other_ns(values: pd.Series) -> np.ndarray:
    """Epoch seconds (numbers or numeric strings), else any ISO 8601 text the fast path skipped."""
    numeric = pd.to_numeric(values, errors="coerce")
    is_num = numeric.notna()
    out = np.full(len(values), NAT_NS, dtype=np.int64)
    if is_num.any():
        stamps = pd.to_datetime(numeric[is_num], unit="s", utc=True, errors="coerce")
        out[is_num.to_numpy()] = _as_ns(pd.DatetimeIndex(stamps))
    rest = (~is_num & values.notna()).to_numpy()
    if rest.any():
        texts = [str(v) for v in values[rest]]
        out[rest] = _iso_ns(texts)
    return out


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value))


def events_frame(
    events: Iterable[Mapping[str, Any]], entity_field: str = "user_id"
) -> pd.DataFrame:
    """Return one row per event: ``event_id``, ``entity``, UTC ``timestamp`` and known fields.

    Rows are sorted by (timestamp, event_id). Numeric fields are coerced to float (NaN when
    missing or unparseable); ``state`` is accepted for ``region``. Events whose timestamp cannot
    be parsed are dropped and counted in ``frame.attrs["dropped_events"]``.
    """
    rows = events if isinstance(events, list) else list(events)
    ts = timestamps_ns([r.get("timestamp") for r in rows])
    good = np.flatnonzero(ts != NAT_NS)
    ids = [v if type(v := rows[i].get("_id")) is str else _event_id(v) for i in good]
    order = _time_order(ts[good], ids)
    kept = [rows[i] for i in good[order]]
    columns: dict[str, Any] = {
        "event_id": _objects([ids[i] for i in order]),
        "entity": _objects([r.get(entity_field) for r in kept]),
        "timestamp": pd.DatetimeIndex(ts[good[order]].view("datetime64[ns]")).tz_localize("UTC"),
    }
    for name in CATEGORICAL_FIELDS:
        if name == "region":
            values = [_category(_region(r)) for r in kept]
        else:  # the common case inline: one pass, no call per row
            values = [
                (v.strip() or None) if type(v := r.get(name)) is str else _clean_category(v)
                for r in kept
            ]
        columns[name] = _objects(values)
    for name in NUMERIC_FIELDS:
        columns[name] = _floats([r.get(name) for r in kept])
    frame = pd.DataFrame(columns)
    frame.attrs["dropped_events"] = len(rows) - len(good)
    return frame


def _objects(values: list[Any]) -> pd.Series:
    return pd.Series(values, dtype=object)


def _floats(values: list[Any]) -> np.ndarray:
    try:
        return np.array(values, dtype=float)
    except (TypeError, ValueError):
        return pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(float)


def _event_id(value: Any) -> str | None:
    return None if _missing(value) else str(value)


def _region(row: Mapping[str, Any]) -> Any:
    region = row.get("region")
    return row.get("state") if _missing(region) else region


def _time_order(ts: np.ndarray, ids: list[str | None]) -> np.ndarray:
    """Row order by (timestamp, event_id), missing ids last among equal timestamps."""
    order = np.argsort(ts, kind="stable")
    ordered = ts[order]
    if len(ts) < 2 or not (ordered[1:] == ordered[:-1]).any():
        return order
    keyed = sorted(range(len(ts)), key=lambda i: (ts[i], ids[i] is None, ids[i] or ""))
    return np.asarray(keyed, dtype=np.intp)


def _category(value: Any) -> str | None:
    return (value.strip() or None) if type(value) is str else _clean_category(value)


def _clean_category(value: Any) -> str | None:
    if _missing(value):
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
    return window_table(frame, window, known_endpoints)


def window_table(
    frame: pd.DataFrame,
    window: str = "15min",
    known_endpoints: Iterable[str] = (),
    *,
    by_entity: bool = False,
    event_ids: bool = True,
) -> pd.DataFrame:
    """:func:`window_features` over one frame, optionally per entity (a leading ``entity``).

    With ``by_entity`` windows are grouped by (entity, window) and ``new_endpoints`` is per
    entity; without ``event_ids`` that (costly) list column is left out.
    """
    lead = ["entity"] if by_entity else []
    columns = [*lead, "window_start", "window_end", *(["event_ids"] if event_ids else [])]
    columns += list(WINDOW_FEATURES)
    if frame.empty:
        return pd.DataFrame(columns=columns)
    width = window_timedelta(window).value
    ts = pd.DatetimeIndex(frame["timestamp"]).as_unit("ns").asi8
    owner = np.zeros(len(ts), dtype=np.intp)
    entities: Any = None
    order = np.arange(len(ts))
    if by_entity:
        owner, entities = pd.factorize(frame["entity"].astype(str), sort=True)
        order = np.argsort(owner, kind="stable")
    win = ts[order] // width
    owner = owner[order]
    starts = group_starts(owner, win)
    out: dict[str, Any] = {}
    if by_entity:
        out["entity"] = _objects(list(np.asarray(entities)[owner[starts]]))
    stamps = pd.DatetimeIndex((win[starts] * width).view("datetime64[ns]")).tz_localize("UTC")
    out["window_start"] = stamps
    out["window_end"] = stamps + pd.Timedelta(width, unit="ns")
    if event_ids:
        ids = frame["event_id"].to_numpy(dtype=object)[order].tolist()
        ends = [*starts[1:].tolist(), len(ids)]
        out["event_ids"] = [ids[a:b] for a, b in zip(starts.tolist(), ends, strict=True)]
    out.update(_window_values(frame, order, owner, starts, set(known_endpoints)))
    return pd.DataFrame({name: out[name] for name in columns})


def _codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    codes, uniques = pd.factorize(pd.Series(values, dtype=object))
    return codes, np.asarray(uniques, dtype=object)


def _window_values(
    frame: pd.DataFrame,
    order: np.ndarray,
    owner: np.ndarray,
    starts: np.ndarray,
    known: set[str],
) -> dict[str, np.ndarray]:
    """The count, ratio, bytes, latency and distinct-value features per window."""
    n = len(order)
    type_code, types = _codes(frame["type"].to_numpy(dtype=object)[order])
    has_type = type_code >= 0
    is_login = np.array([*map(is_login_type, types), False], dtype=bool)[type_code]  # -1: none
    status = frame["status_code"].to_numpy(dtype=float)[order]
    has_status = ~np.isnan(status)
    endpoint, endpoints = _codes(frame["endpoint"].to_numpy(dtype=object)[order])
    ip, _ = _codes(frame["ip_address"].to_numpy(dtype=object)[order])
    is_known = np.array([*(e in known for e in endpoints), False], dtype=bool)[endpoint]
    first = first_occurrence(endpoint, owner) & ~is_known

    def where(flag: np.ndarray, present: np.ndarray) -> np.ndarray:
        return np.where(present, flag.astype(float), np.nan)

    with np.errstate(invalid="ignore"):
        is_4xx = (status >= 400) & (status < 500)
        is_5xx = status >= 500
    failed = is_login & np.isin(status, FAILED_LOGIN_CODES)
    logins = grouped.nansum(where(is_login, has_type), starts)
    failed_logins = grouped.nansum(where(failed, has_type), starts)
    status_4xx = grouped.nansum(where(is_4xx, has_status), starts)
    status_5xx = grouped.nansum(where(is_5xx, has_status), starts)
    n_status = grouped.valid_count(status, starts)
    bytes_sent = frame["bytes_sent"].to_numpy(dtype=float)[order]
    latency = frame["latency_ms"].to_numpy(dtype=float)[order]
    with np.errstate(divide="ignore", invalid="ignore"):
        failed_ratio = np.where(logins > 0, failed_logins / logins, 0.0)
        failed_ratio[np.isnan(logins)] = np.nan
        ratio_4xx = np.where(n_status > 0, status_4xx / n_status, np.nan)
        ratio_5xx = np.where(n_status > 0, status_5xx / n_status, np.nan)
    distinct_endpoints = grouped.distinct_count(endpoint, starts)
    distinct_ips = grouped.distinct_count(ip, starts)
    return {
        "events": grouped.sizes(starts, n).astype(float),
        "logins": logins,
        "failed_logins": failed_logins,
        "failed_login_ratio": failed_ratio,
        "status_4xx": status_4xx,
        "status_5xx": status_5xx,
        "ratio_4xx": ratio_4xx,
        "ratio_5xx": ratio_5xx,
        "bytes_sum": grouped.nansum(bytes_sent, starts),
        "bytes_max": grouped.nanmax(bytes_sent, starts),
        "latency_mean": grouped.nanmean(latency, starts),
        "latency_p95": grouped.nanquantile(latency, starts, 0.95),
        # no endpoint (ip) in a window is missing data, not zero distinct values
        "distinct_endpoints": np.where(distinct_endpoints > 0, distinct_endpoints, np.nan),
        "distinct_ips": np.where(distinct_ips > 0, distinct_ips, np.nan),
        "new_endpoints": grouped.nansum(where(first, endpoint >= 0), starts),
    }


def feature_matrix(
    windows: pd.DataFrame, features: Sequence[str], fill: Mapping[str, float]
) -> np.ndarray:
    """Return ``windows[features]`` as a float array with NaN replaced by ``fill[feature]``."""
    X = np.array(windows.loc[:, list(features)].to_numpy(dtype=float), dtype=float)
    rows, cols = np.nonzero(np.isnan(X))
    if len(rows):
        values = np.array([fill.get(f, np.nan) for f in features], dtype=float)
        X[rows, cols] = values[cols]
    return X
