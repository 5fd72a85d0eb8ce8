"""An entity's training history as sufficient statistics, each part tagged with its UTC day.

Fitting an entity's model (:func:`~workers.engine.model.fit_summary`) needs of its history only
its active windows' features, its logins' context, its distinct active local hours, its time
zones and endpoints counted, and its span. A :class:`HistorySummary` holds exactly these, with
the UTC day every part fell on, so that a retrain can read only the days that changed
(:func:`combined`: the stored summary's other days plus a summary of the re-read days) and drop
the days that left the history horizon (:meth:`HistorySummary.since`), and fit the same model
a full read would. ``fit_entity_model`` itself summarizes the events it is given and fits the
summary: there is one fitting path.

What a summary cannot know exactly: a window's ``new_endpoints`` counts the endpoints unseen in
the history *when its day was summarized*; a full read counts against the days still in the
horizon, so the two differ only for an endpoint whose earlier use has expired. Events whose local
time comes from the entity's usual zone (no ``tz``, no ``utc_offset_minutes``) are kept as UTC
quarter hours and placed in the zone when fitting, since the usual zone can change.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .context import CONTEXT_FIELDS, local_times_ns, login_context
from .features import WINDOW_FEATURES, events_frame, window_table, window_timedelta

DAY_NS = 86_400 * 10**9
HOUR_NS = 3_600 * 10**9
QUARTER_NS = 900 * 10**9
MAX_ENDPOINTS_PER_DAY = 1000
SUMMARY_FORMAT = 2


def supports_window(window: str) -> bool:
    """Whether windows of this length never straddle a UTC midnight (a day divides into them)."""
    return DAY_NS % int(window_timedelta(window).value) == 0


@dataclass(frozen=True)
class DayCounts:
    """One UTC day's event count, span, and time zones and endpoints counted."""

    events: int
    first_ns: int
    last_ns: int
    tz: dict[str, int] = field(default_factory=dict)
    endpoints: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class HistorySummary:
    """Sufficient statistics of an entity's history (see the module docstring).

    ``windows``: ``window_start``, ``window_end``, ``weight`` and the window feature columns
    (``event_ids`` too when summarized with them); ``logins``: the login context columns and
    ``weight``; ``hours``: distinct local hour keys of events with their own zone or offset,
    ``quarters``: distinct UTC quarter-hour keys of the others, each with its UTC day and weight.
    """

    window: str
    windows: pd.DataFrame
    logins: pd.DataFrame
    hours: tuple[np.ndarray, np.ndarray, np.ndarray]
    quarters: tuple[np.ndarray, np.ndarray, np.ndarray]
    days: dict[int, DayCounts]

    @property
    def n_events(self) -> int:
        return sum(d.events for d in self.days.values())

    @property
    def span_ns(self) -> tuple[int, int] | None:
        """(first, last) event time in epoch ns, or None without events."""
        if not self.days:
            return None
        return min(d.first_ns for d in self.days.values()), max(
            d.last_ns for d in self.days.values()
        )

    @property
    def last_day(self) -> int | None:
        return max(self.days) if self.days else None

    def home_zone(self) -> str | None:
        """The entity's most used time zone (ties: the first by name), or None."""
        counts = _summed(d.tz for d in self.days.values())
        if not counts:
            return None
        return min(counts, key=lambda z: (-counts[z], z))

    def endpoint_counts(self) -> dict[str, int]:
        return _summed(d.endpoints for d in self.days.values())

    def known_endpoints(self, limit: int) -> tuple[str, ...]:
        """The ``limit`` most used endpoints (ties by name), sorted by name."""
        counts = self.endpoint_counts()
        top = sorted(counts, key=lambda e: (-counts[e], e))[:limit]
        return tuple(sorted(top))

    def local_hour_keys(self, home_zone: str | None) -> tuple[np.ndarray, np.ndarray]:
        """(local hour keys, weights) of every active hour, zone-less events in ``home_zone``."""
        keys, _, weights = self.hours
        q_keys, _, q_weights = self.quarters
        if len(q_keys):
            stamps = pd.DatetimeIndex((q_keys * QUARTER_NS).view("datetime64[ns]")).tz_localize(
                "UTC"
            )
            local = local_times_ns(
                stamps, [None] * len(q_keys), np.full(len(q_keys), np.nan), home_zone
            )
            keys = np.concatenate([keys, local // HOUR_NS])
            weights = np.concatenate([weights, q_weights])
        return keys, weights

    def since(self, day: int) -> HistorySummary:
        """This summary without the days before ``day`` (the history horizon)."""
        return self._days_where(lambda d: d >= day)

    def before(self, day: int) -> HistorySummary:
        """This summary without ``day`` and the days after it (they are to be read again)."""
        return self._days_where(lambda d: d < day)

    def _days_where(self, keep: Any) -> HistorySummary:
        w_days = _days_of(self.windows["window_start"])
        l_days = _days_of(self.logins["timestamp"])
        return HistorySummary(
            window=self.window,
            windows=_rows_where(self.windows, keep(w_days)),
            logins=_rows_where(self.logins, keep(l_days)),
            hours=_parts_where(self.hours, keep(self.hours[1])),
            quarters=_parts_where(self.quarters, keep(self.quarters[1])),
            days={d: c for d, c in self.days.items() if keep(d)},
        )

    def to_state(self) -> dict[str, Any]:
        """Plain data (numpy arrays, lists, dicts) for :func:`summary_from_state`."""
        w = self.windows
        return {
            "format": SUMMARY_FORMAT,
            "window": self.window,
            "windows": {
                "window_start": _ns(w["window_start"]),
                "weight": w["weight"].to_numpy(dtype=float),
                **{f: w[f].to_numpy(dtype=float) for f in WINDOW_FEATURES},
            },
            "logins": {
                "timestamp": _ns(self.logins["timestamp"]),
                "weight": self.logins["weight"].to_numpy(dtype=float),
                **{f: list(self.logins[f]) for f in CONTEXT_FIELDS},
                "local_hour": self.logins["local_hour"].to_numpy(dtype=float),
            },
            "hours": list(self.hours),
            "quarters": list(self.quarters),
            "days": {
                str(d): {
                    "events": c.events,
                    "first_ns": c.first_ns,
                    "last_ns": c.last_ns,
                    "tz": c.tz,
                    "endpoints": c.endpoints,
                }
                for d, c in sorted(self.days.items())
            },
        }


def summary_from_state(state: Mapping[str, Any]) -> HistorySummary:
    """Rebuild a :class:`HistorySummary` from :meth:`HistorySummary.to_state` output
    (ValueError when it is of another format)."""
    if state.get("format") != SUMMARY_FORMAT:
        raise ValueError(
            f"history summary format {state.get('format')!r}, expected {SUMMARY_FORMAT}"
        )
    width = pd.Timedelta(window_timedelta(str(state["window"])))
    w = state["windows"]
    starts = _stamps(w["window_start"])
    windows = pd.DataFrame(
        {
            "window_start": starts,
            "window_end": starts + width,
            **{f: np.asarray(w[f], dtype=float) for f in WINDOW_FEATURES},
            "weight": np.asarray(w["weight"], dtype=float),
        }
    )
    lg = state["logins"]
    logins = pd.DataFrame(
        {
            "event_id": pd.Series([None] * len(lg["timestamp"]), dtype=object),
            "timestamp": _stamps(lg["timestamp"]),
            **{f: pd.Series(list(lg[f]), dtype=object) for f in CONTEXT_FIELDS},
            "local_hour": np.asarray(lg["local_hour"], dtype=float),
            "weight": np.asarray(lg["weight"], dtype=float),
        }
    )
    return HistorySummary(
        window=str(state["window"]),
        windows=windows,
        logins=logins,
        hours=_parts(state["hours"]),
        quarters=_parts(state["quarters"]),
        days={
            int(d): DayCounts(
                events=int(c["events"]),
                first_ns=int(c["first_ns"]),
                last_ns=int(c["last_ns"]),
                tz={str(k): int(v) for k, v in c["tz"].items()},
                endpoints={str(k): int(v) for k, v in c["endpoints"].items()},
            )
            for d, c in state["days"].items()
        },
    )


def joined_states(states: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One :meth:`HistorySummary.to_state` of summaries of consecutive day ranges, in day order
    (what :func:`combined` of their summaries gives, without building each one's frames);
    ValueError when their formats or windows differ."""
    first = states[0]
    if any(s.get("format") != first.get("format") for s in states):
        raise ValueError("history summary parts of different formats")
    if any(s.get("window") != first.get("window") for s in states):
        raise ValueError("history summary parts of different windows")

    def columns(key: str) -> dict[str, Any]:
        names = list(first[key])
        return {
            n: list(itertools.chain.from_iterable(s[key][n] for s in states))
            if isinstance(first[key][n], list)
            else np.concatenate([np.asarray(s[key][n]) for s in states])
            for n in names
        }

    return {
        "format": first["format"],
        "window": first["window"],
        "windows": columns("windows"),
        "logins": columns("logins"),
        "hours": [np.concatenate([np.asarray(s["hours"][k]) for s in states]) for k in range(3)],
        "quarters": [
            np.concatenate([np.asarray(s["quarters"][k]) for s in states]) for k in range(3)
        ],
        "days": {d: c for s in states for d, c in s["days"].items()},
    }


def summarize(
    frame: pd.DataFrame,
    window: str,
    *,
    dismissed: Collection[str] = frozenset(),
    dismissed_weight: float = 1.0,
    known_endpoints: Iterable[str] = (),
    event_ids: bool = True,
) -> HistorySummary:
    """Summarize an entity's :func:`~workers.engine.features.events_frame`.

    Events in ``dismissed`` count ``dismissed_weight`` times (their windows, hours and logins);
    ``known_endpoints`` are not new in any window (the endpoints of the days before ``frame``).
    """
    ts = pd.DatetimeIndex(frame["timestamp"]).as_unit("ns").asi8 if len(frame) else _no_ints()
    hit = (
        frame["event_id"].isin(list(dismissed)).to_numpy(dtype=bool)
        if dismissed and len(frame)
        else np.zeros(len(frame), dtype=bool)
    )
    weight = np.where(hit, float(dismissed_weight), 1.0)
    windows = window_table(frame, window, known_endpoints, event_ids=event_ids or bool(dismissed))
    if dismissed and len(windows):
        any_hit = [any(e in dismissed for e in ids) for ids in windows["event_ids"]]
        windows["weight"] = np.where(any_hit, float(dismissed_weight), 1.0)
    else:
        windows["weight"] = np.ones(len(windows))
    if not event_ids and "event_ids" in windows:
        windows = windows.drop(columns=["event_ids"])
    logins = login_context(frame)
    logins["weight"] = np.where(logins["event_id"].isin(list(dismissed)), dismissed_weight, 1.0)
    return HistorySummary(
        window=window,
        windows=windows,
        logins=logins,
        **_active_time(frame, ts, weight),
        days=_day_counts(frame, ts),
    )


def own_events(frame: pd.DataFrame, entity: str) -> pd.DataFrame:
    """The rows of ``frame`` that belong to ``entity`` (or name no entity)."""
    name = str(entity)
    own = np.array(
        [e is None or (e == name if type(e) is str else str(e) == name) for e in frame["entity"]],
        dtype=bool,
    )
    if own.all():  # the usual case: a fresh frame of this entity's events, kept as it is
        return frame
    kept = frame.loc[own].reset_index(drop=True)
    kept.attrs = dict(frame.attrs)
    return kept


def summarize_events(
    entity: str,
    events: Iterable[Mapping[str, Any]],
    *,
    entity_field: str,
    window: str,
    known_endpoints: Iterable[str] = (),
) -> HistorySummary:
    """The summary (without event ids) of ``entity``'s raw event documents among ``events``."""
    frame = own_events(events_frame(events, entity_field), entity)
    return summarize(frame, window, known_endpoints=known_endpoints, event_ids=False)


def combined(kept: HistorySummary, fresh: HistorySummary) -> HistorySummary:
    """``kept`` (days before the re-read ones) followed by ``fresh`` (the re-read days)."""
    if kept.window != fresh.window:
        raise ValueError(f"summaries of {kept.window} and {fresh.window} windows")
    columns = [c for c in kept.windows.columns if c in fresh.windows.columns]
    return HistorySummary(
        window=kept.window,
        windows=_concat(kept.windows[columns], fresh.windows[columns]),
        logins=_concat(kept.logins, fresh.logins[list(kept.logins.columns)]),
        hours=_joined(kept.hours, fresh.hours),
        quarters=_joined(kept.quarters, fresh.quarters),
        days={**kept.days, **fresh.days},
    )


def _active_time(
    frame: pd.DataFrame, ts: np.ndarray, weight: np.ndarray
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Distinct local hours of events with their own zone or offset; distinct UTC quarter hours
    of the others (placed in the entity's usual zone when fitting)."""
    if not len(frame):
        empty = (_no_ints(), _no_ints(), np.zeros(0))
        return {"hours": empty, "quarters": empty}
    tz = [t if isinstance(t, str) else None for t in frame["tz"].tolist()]
    offset = frame["utc_offset_minutes"].to_numpy(dtype=float)
    zoneless = np.isnan(offset) & np.array([not t for t in tz], dtype=bool)
    local = local_times_ns(pd.DatetimeIndex(frame["timestamp"]), tz, offset, None)
    own = ~zoneless
    return {
        "hours": _distinct(local[own] // HOUR_NS, ts[own] // DAY_NS, weight[own]),
        "quarters": _distinct(ts[zoneless] // QUARTER_NS, ts[zoneless] // DAY_NS, weight[zoneless]),
    }


def _distinct(
    keys: np.ndarray, days: np.ndarray, weight: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (day, key) pairs with the largest weight of each."""
    if not len(keys):
        return _no_ints(), _no_ints(), np.zeros(0)
    pairs, inverse = np.unique(np.stack([days, keys]), axis=1, return_inverse=True)
    best = np.zeros(pairs.shape[1])
    np.maximum.at(best, inverse.ravel(), weight)
    return pairs[1].astype(np.int64), pairs[0].astype(np.int64), best


def _day_counts(frame: pd.DataFrame, ts: np.ndarray) -> dict[int, DayCounts]:
    if not len(frame):
        return {}
    day = ts // DAY_NS
    tz = frame["tz"].to_numpy(dtype=object)
    endpoint = frame["endpoint"].to_numpy(dtype=object)
    out: dict[int, DayCounts] = {}
    bounds = np.flatnonzero(np.r_[True, day[1:] != day[:-1], True])  # frame is in time order
    for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        endpoints = _counted(endpoint[a:b])
        if len(endpoints) > MAX_ENDPOINTS_PER_DAY:
            top = sorted(endpoints, key=lambda e: (-endpoints[e], e))[:MAX_ENDPOINTS_PER_DAY]
            endpoints = {e: endpoints[e] for e in top}
        out[int(day[a])] = DayCounts(
            events=b - a,
            first_ns=int(ts[a]),
            last_ns=int(ts[b - 1]),
            tz=_counted(tz[a:b]),
            endpoints=endpoints,
        )
    return out


def _counted(values: np.ndarray) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values.tolist():
        if isinstance(v, str):
            out[v] = out.get(v, 0) + 1
    return out


def _summed(dicts: Iterable[Mapping[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for d in dicts:
        for k, v in d.items():
            out[k] = out.get(k, 0) + v
    return out


def _no_ints() -> np.ndarray:
    return np.zeros(0, dtype=np.int64)


def _ns(values: pd.Series) -> np.ndarray:
    return np.asarray(pd.DatetimeIndex(values).as_unit("ns").asi8, dtype=np.int64)


def _stamps(values: Any) -> pd.DatetimeIndex:
    ns = np.asarray(values, dtype=np.int64)
    return pd.DatetimeIndex(ns.view("datetime64[ns]")).tz_localize("UTC")


def _days_of(values: pd.Series) -> np.ndarray:
    return _ns(values) // DAY_NS if len(values) else _no_ints()


def _rows_where(frame: pd.DataFrame, keep: np.ndarray) -> pd.DataFrame:
    return frame.loc[np.asarray(keep, dtype=bool)].reset_index(drop=True)


def _parts(values: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    keys, days, weights = values
    return (
        np.asarray(keys, dtype=np.int64),
        np.asarray(days, dtype=np.int64),
        np.asarray(weights, dtype=float),
    )


def _parts_where(
    parts: tuple[np.ndarray, np.ndarray, np.ndarray], keep: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mask = np.asarray(keep, dtype=bool)
    keys, days, weights = parts
    return keys[mask], days[mask], weights[mask]


def _joined(
    a: tuple[np.ndarray, np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    keys, days, weights = (np.concatenate([x, y]) for x, y in zip(a, b, strict=True))
    return keys.astype(np.int64), days.astype(np.int64), weights.astype(float)


def _concat(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    if not len(a):
        return b.reset_index(drop=True)
    if not len(b):
        return a.reset_index(drop=True)
    return pd.concat([a, b], ignore_index=True)
