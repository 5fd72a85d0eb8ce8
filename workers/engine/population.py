"""Population profile: what is normal across many entities.

Built from many entities' events, it holds (1) per login-context field the population's value
frequencies (top values plus one rate for anything else), the prior of each entity's novelty
profile, (2) pooled window-feature medians and robust scales on the z-score detector's scale,
which every entity's own profile is shrunk toward (an entity with little history is mostly the
population), and (3) the pooled share of active hours per local (day type, hour), the prior of
each entity's time-of-day model, and (4) cohorts of working hours (a mixture fitted to the
entities' hours) from which a sparse entity's time prior is drawn. Round-trips through plain
JSON (:meth:`Population.to_json` / :meth:`Population.from_json`) so the worker layer can keep
it as a CouchDB document.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .config import EngineConfig
from .context import CONTEXT_FIELDS, local_times_ns
from .detectors.novelty import FieldPrior
from .detectors.rates import overdispersion, pooled_rates, prior_strengths
from .detectors.robust_zscore import robust_profile, transform
from .detectors.time_cohorts import cohort_prior, fit_cohorts
from .detectors.time_of_day import day_types
from .features import (
    LOGGED_FEATURES,
    Z_FEATURES,
    Z_MIN_SCALE,
    events_frame,
    login_context,
    window_table,
)

POPULATION_FORMAT = 4
TOP_VALUES = 25


@dataclass(frozen=True)
class Population:
    """Population frequencies and pooled window statistics (plain data).

    Attributes:
        priors: per context field, population value frequencies.
        features: window features with data in the population, model order.
        fill: pooled median per feature (raw units): the NaN fill of a window's features.
        z_center / z_scale: pooled robust median and scale per feature on the z-score
            detector's scale (``log1p`` for logged features).
        time_prior: share of active hours per local (weekday/weekend, hour), 2 × 24.
        rates: pooled failure rates (failed logins per login, 4xx/5xx per request).
        rate_rho: per rate, how much failures cluster in windows (intra-window correlation,
            :func:`.detectors.rates.overdispersion`); empty in populations stored before it.
        n_entities / n_logins / n_windows: sizes the profile was built from.
    """

    priors: dict[str, FieldPrior]
    features: tuple[str, ...]
    fill: dict[str, float]
    z_center: dict[str, float]
    z_scale: dict[str, float]
    time_prior: list[list[float]]
    rates: dict[str, float]
    n_entities: int
    n_logins: int
    n_windows: int
    time_cohorts: list[list[list[float]]] = field(default_factory=list)
    time_cohort_weights: list[float] = field(default_factory=list)
    window_level_factor: float = 1.0
    rate_rho: dict[str, float] = field(default_factory=dict)
    rate_strength: dict[str, float] = field(default_factory=dict)

    def time_prior_for(self, counts: np.ndarray) -> np.ndarray:
        """The time-of-day prior of an entity with these active-hour counts (2 × 24): its
        cohorts' mixture of hours (:mod:`.detectors.time_cohorts`) with the population's share
        of weekend hours, else the population's hours."""
        if not self.time_cohorts:
            return np.asarray(self.time_prior, dtype=float)
        cohorts, weights = np.asarray(self.time_cohorts), np.asarray(self.time_cohort_weights)
        mix = cohort_prior(counts, cohorts, weights)
        # the cohort says which hours; how often anyone works a weekend stays the population's
        day_share = np.asarray(self.time_prior, dtype=float).sum(axis=1)
        rows = mix.sum(axis=1, keepdims=True)
        return np.asarray(mix / np.where(rows > 0, rows, 1.0) * day_share[:, None])

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-serializable dict (lists and numbers only)."""
        return {
            "format": POPULATION_FORMAT,
            "priors": {f: p.to_state() for f, p in self.priors.items()},
            "features": list(self.features),
            "fill": self.fill,
            "z_center": self.z_center,
            "z_scale": self.z_scale,
            "time_prior": [list(map(float, row)) for row in self.time_prior],
            "rates": dict(self.rates),
            "n_entities": self.n_entities,
            "n_logins": self.n_logins,
            "n_windows": self.n_windows,
            "time_cohorts": self.time_cohorts,
            "time_cohort_weights": list(map(float, self.time_cohort_weights)),
            "window_level_factor": float(self.window_level_factor),
            "rate_rho": {k: float(v) for k, v in self.rate_rho.items()},
            "rate_strength": {k: float(v) for k, v in self.rate_strength.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Population:
        """Rebuild from :meth:`to_json` output (extra keys such as ``_id``/``_rev`` ignored)."""
        if data.get("format") != POPULATION_FORMAT:
            raise ValueError(f"unsupported population format {data.get('format')!r}")
        return cls(
            priors={f: FieldPrior.from_state(p) for f, p in data["priors"].items()},
            features=tuple(data["features"]),
            fill={k: float(v) for k, v in data["fill"].items()},
            z_center={k: float(v) for k, v in data["z_center"].items()},
            z_scale={k: float(v) for k, v in data["z_scale"].items()},
            time_prior=[[float(v) for v in row] for row in data["time_prior"]],
            rates={k: float(v) for k, v in data["rates"].items()},
            n_entities=int(data["n_entities"]),
            n_logins=int(data["n_logins"]),
            n_windows=int(data["n_windows"]),
            time_cohorts=[
                [[float(v) for v in row] for row in cohort] for cohort in data["time_cohorts"]
            ],
            time_cohort_weights=[float(v) for v in data["time_cohort_weights"]],
            window_level_factor=float(data["window_level_factor"]),
            rate_rho={k: float(v) for k, v in (data.get("rate_rho") or {}).items()},
            rate_strength={k: float(v) for k, v in (data.get("rate_strength") or {}).items()},
        )


def field_prior(values: pd.Series, top: int = TOP_VALUES) -> FieldPrior:
    """Add-one smoothed frequencies of ``values``: the ``top`` most common plus an unseen rate."""
    counts = values.dropna().value_counts()
    denom = float(counts.sum() + len(counts) + 1)
    head = counts.head(top)
    return FieldPrior({str(k): (float(c) + 1.0) / denom for k, c in head.items()}, 1.0 / denom)


def z_profile(
    values: np.ndarray, features: tuple[str, ...], weight: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Robust (median, scale) per feature on the z-score detector's scale (floors applied)."""
    logged = np.array([f in LOGGED_FEATURES for f in features], dtype=bool)
    floor = np.array([Z_MIN_SCALE.get(f, 0.0) for f in features], dtype=float)
    return robust_profile(transform(values, logged), weight, floor, 0.0)


def entity_hour_counts(frame: pd.DataFrame) -> np.ndarray:
    """Distinct active hours per entity (E × 2 × 24), in each event's local time."""
    if frame.empty:
        return np.zeros((0, 2, 24))
    local = local_times_ns(
        pd.DatetimeIndex(frame["timestamp"]),
        [t if isinstance(t, str) else None for t in frame["tz"].tolist()],
        frame["utc_offset_minutes"].to_numpy(dtype=float),
    )
    entity = pd.factorize(frame["entity"].astype(str))[0].astype(np.int64)
    pairs = np.unique(np.stack([entity, local // 3_600_000_000_000]), axis=1)  # active hours
    key = pairs[1]
    day = day_types(key)
    counts = np.zeros((int(entity.max()) + 1, 2, 24))
    np.add.at(counts, (pairs[0], day, (key % 24).astype(int)), 1.0)
    return counts


def time_prior_of(counts: np.ndarray) -> np.ndarray:
    """Pooled active-hour shares (2 × 24) of many entities' hour counts (E × 2 × 24)."""
    profile = np.asarray(counts, dtype=float).reshape(-1, 2, 24).sum(axis=0) + 0.5
    return np.asarray(profile / profile.sum())


def build_population(
    events: Iterable[Mapping[str, Any]],
    *,
    entity_field: str = "user_id",
    config: EngineConfig | None = None,
) -> Population:
    """Build a :class:`Population` from many entities' events (pure; no I/O)."""
    config = config or EngineConfig()
    frame = events_frame(events, entity_field)
    context = login_context(frame)
    priors = {f: field_prior(context[f]) for f in CONTEXT_FIELDS}
    pooled = window_table(frame, config.window, by_entity=True, event_ids=False)
    numeric = pooled.select_dtypes("number")
    pooled = pooled.loc[~np.isinf(numeric.to_numpy(dtype=float)).any(axis=1)]  # overflowed sums
    features = tuple(f for f in Z_FEATURES if f in pooled.columns and pooled[f].notna().any())
    fill = {f: float(pooled[f].median()) for f in features}
    z_center: dict[str, float] = {}
    z_scale: dict[str, float] = {}
    for f in features:
        col = pooled[f].dropna().to_numpy(dtype=float)[:, None]
        med, sc = z_profile(col, (f,))
        z_center[f], z_scale[f] = float(med[0]), float(sc[0])
    rates = pooled_rates(pooled)
    hours = entity_hour_counts(frame)
    cohorts, cohort_weights = fit_cohorts(hours)
    return Population(
        priors=priors,
        features=features,
        fill=fill,
        z_center=z_center,
        z_scale=z_scale,
        time_prior=time_prior_of(hours).tolist(),
        time_cohorts=cohorts.tolist(),
        time_cohort_weights=cohort_weights.tolist(),
        rates=rates,
        rate_rho=(rho := overdispersion(pooled, rates)),
        rate_strength=prior_strengths(pooled, rates, rho),
        n_entities=int(pooled["entity"].nunique()) if len(pooled) else 0,
        n_logins=len(context),
        n_windows=len(pooled),
    )
