"""Time-of-day model of one entity: when, in its own local time, it is usually active.

The unit is an **active hour**: a (local date, local hour) in which the entity had events; a busy
hour and a quiet one count the same, so a long session does not outweigh the rest. Counts are
kept per day type (weekday, weekend) × 24 local hours, smoothed over neighbouring hours with a
circular Gaussian kernel (sigma ``HOUR_SIGMA`` h), and shrunk in two levels:

- an hour profile over all days, shrunk toward the population's by ``prior_strength`` hours;
- each day type's profile, shrunk toward that all-days profile by ``prior_strength`` hours
  (someone who works Saturdays tends to keep their weekday hours);
- the share of weekend hours, shrunk toward the population's by ``DAY_TYPE_PRIOR`` (6) hours.

This gives a predictive probability ``q`` for each of the 48 cells. A new active hour's p-value
is the total probability of the cells no more likely than its own (how surprising "at least this
rare" is under the entity's history), so ``1 - p`` is in [0, 1], higher = more unusual, and
calibrated without reusing the training hours. :meth:`observe` adds hours as they are scored, so
a new habit alerts once and then becomes part of the profile.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

HOUR_SIGMA = 1.0
_DIST = np.minimum(np.arange(24), 24 - np.arange(24))
_KERNEL = np.exp(-(_DIST**2) / (2 * HOUR_SIGMA**2))
_KERNEL = _KERNEL / _KERNEL.sum()
SMOOTHING = np.array([np.roll(_KERNEL, h) for h in range(24)])
"""Column ``h`` spreads one count at hour ``h`` over its neighbours (mass preserved)."""
DAY_TYPES = ("weekday", "weekend")
UNIFORM_HOURS = np.full((2, 24), 1.0 / 48)
DAY_TYPE_PRIOR = 6.0
"""Pseudo active hours behind the share of weekend hours (at least ``prior_strength``)."""


DAY_STARTS_AT = 6
"""Local hour at which a day starts for its day type: the hours before it belong to the night
of the day before. A shift from Friday 22:00 to Saturday 06:00 is a Friday's work (a weekday),
not a weekend night; a day worker is not active then either way."""


def day_types(hour_keys: np.ndarray) -> np.ndarray:
    """Day type (0 weekday, 1 weekend) of local hour keys (local epoch ns // 1 h)."""
    keys = np.asarray(hour_keys, dtype=np.int64) - DAY_STARTS_AT
    return np.asarray((((keys // 24 + 3) % 7) >= 5).astype(int))  # 1970-01-01 was a Thursday


@dataclass
class TimeOfDayProfile:
    """Active-hour counts (2 × 24) of one entity and the population prior they shrink toward."""

    counts: np.ndarray
    prior: np.ndarray
    prior_strength: float = 4.0

    @classmethod
    def fit(
        cls,
        local_ns: np.ndarray,
        *,
        prior: np.ndarray | None = None,
        weight: np.ndarray | None = None,
        prior_strength: float = 4.0,
    ) -> TimeOfDayProfile:
        """Count the distinct active hours of ``local_ns`` (events' local times, epoch ns).

        ``weight`` (per event) counts an hour several times (a dismissed anomaly's hours).
        """
        counts = np.zeros((2, 24))
        ns = np.asarray(local_ns, dtype=np.int64)
        if len(ns):
            key = ns // 3_600_000_000_000
            w = np.ones(len(ns)) if weight is None else np.asarray(weight, dtype=float)
            uniq, inverse = np.unique(key, return_inverse=True)
            per_hour = np.zeros(len(uniq))
            np.maximum.at(per_hour, inverse, w)
            hours = (uniq % 24).astype(int)
            day = day_types(uniq)
            np.add.at(counts, (day, hours), per_hour)
        base = UNIFORM_HOURS if prior is None else np.asarray(prior, dtype=float)
        return cls(counts=counts, prior=base / base.sum(), prior_strength=prior_strength)

    @property
    def n_hours(self) -> float:
        """Active hours of history (weighted)."""
        return float(self.counts.sum())

    def predictive(self) -> np.ndarray:
        """Probability (2 × 24, sums to 1) that the entity's next active hour falls in a cell."""
        m = self.prior_strength
        smooth = self.counts @ SMOOTHING.T  # spread each hour's count over its neighbours
        pop_day = self.prior.sum(axis=1)
        pop_hours = self.prior.sum(axis=0)  # the population's hours, all days together
        all_days = (smooth.sum(axis=0) + m * pop_hours) / (smooth.sum() + m)
        per_day = np.empty((2, 24))
        for d in range(2):
            per_day[d] = (smooth[d] + m * all_days) / (smooth[d].sum() + m)
        k = max(m, DAY_TYPE_PRIOR)  # weekend work now and then is common: a firmer prior
        share = (smooth.sum(axis=1) + k * pop_day) / (smooth.sum() + k)
        q = per_day * share[:, None]
        return np.asarray(q / q.sum())

    def pvalues(self, day_type: np.ndarray, hour: np.ndarray) -> np.ndarray:
        """p-value of each (day type, local hour) given its day type: the mass of that day
        type's hours no more likely than its own. How rare the hour is on such a day, not how
        rare the day is: a weekday worker's Saturday morning is not unusual, their 03:00 is."""
        q = self.predictive()
        rows = q / q.sum(axis=1, keepdims=True)
        d = np.asarray(day_type, dtype=int)
        mine = rows[d]  # each item's day-type row
        own = mine[np.arange(len(d)), np.asarray(hour, dtype=int)]
        out = (mine * (mine <= own[:, None] * (1 + 1e-9))).sum(axis=1)
        return np.asarray(np.clip(out, 0.0, 1.0), dtype=float)

    def observe(self, day_type: int, hour: int, weight: float = 1.0) -> None:
        """Add one active hour (after it was scored): a new habit alerts once."""
        self.counts[int(day_type), int(hour)] += weight

    def usual_hours(self, day_type: int, cover: float = 0.8) -> tuple[int, int] | None:
        """The shortest circular span of local hours ``[start, end)`` holding ``cover`` of this
        day type's own active hours, or None without own history of that day type."""
        row = self.counts[int(day_type)]
        total = row.sum()
        if total <= 0:
            return None
        doubled = np.concatenate([row, row])  # circular: a span may wrap past midnight
        for length in range(1, 25):
            for start in range(24):
                if doubled[start : start + length].sum() >= cover * total:
                    return start, (start + length) % 24
        return 0, 0

    def to_state(self) -> dict[str, Any]:
        """Plain data."""
        return {"counts": self.counts, "prior": self.prior, "prior_strength": self.prior_strength}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> TimeOfDayProfile:
        """Rebuild from :meth:`to_state` output."""
        return cls(
            counts=np.array(state["counts"], dtype=float).reshape(2, 24),
            prior=np.array(state["prior"], dtype=float).reshape(2, 24),
            prior_strength=float(state["prior_strength"]),
        )

    def copy(self) -> TimeOfDayProfile:
        """An independent copy (scoring updates a copy, never the stored model)."""
        return TimeOfDayProfile(self.counts.copy(), self.prior.copy(), self.prior_strength)
