"""Per-entity model: fit on one entity's history, score new events.

``fit_entity_model`` learns what is normal for one entity, whatever its history, through one
path: a robust z-score profile of its active windows shrunk toward the population
(:mod:`~workers.engine.detectors.robust_zscore`), a time-of-day model of its active hours in its
own local time (:mod:`~workers.engine.detectors.time_of_day`), optional IsolationForest /
one-class SVM / seasonal detectors, and a novelty profile of its login context
(:mod:`~workers.engine.detectors.novelty`). An entity with no history is the population; one with
a long history is itself. Every detector gives a tail probability ``p``; a window's ``p``
combines its detectors' (Bonferroni ``max`` or ``fisher``), and an item is flagged when
``p <= target_alert_rate``. Scores are ``1 - p`` in [0, 1], higher = more unusual.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .anomaly import iso_utc
from .config import EngineConfig
from .context import local_times_ns
from .detectors import WINDOW_DETECTOR_CLASSES, NoveltyProfile, RobustZScore, WindowDetector
from .detectors.rates import RATES, RateProfile
from .detectors.seasonal import SeasonalBaseline
from .detectors.time_of_day import TimeOfDayProfile
from .errors import InsufficientHistoryError
from .features import (
    FEATURE_GROUPS,
    LOGGED_FEATURES,
    TWO_SIDED_FEATURES,
    Z_FEATURES,
    Z_MIN_SCALE,
    events_frame,
    feature_matrix,
    login_context,
    window_features,
)
from .feedback import Feedback
from .population import Population, z_profile
from .results import ScoreResult, severity_of
from .summary import HistorySummary, own_events, summarize
from .window_evidence import (
    NS_PER_HOUR,
    SEASONAL_REPLACES,
    combine_families,
    one_family_level,
    session_pvalues,
    time_pvalues,
)

MAX_KNOWN_ENDPOINTS = 300
MIN_CONFIDENCE = 0.1
RATE_COLUMNS = tuple(dict.fromkeys(c for pair in RATES.values() for c in pair))


@dataclass
class EntityModel:
    """Everything needed to score one entity; all fitted state is plain data.

    ``thresholds`` maps ``combined`` (windows) and ``novelty`` (logins) to a threshold on the
    score in [0, 1] (``1 - target_alert_rate`` unless reviews raised it).
    """

    entity: str
    entity_field: str
    config: EngineConfig
    features: tuple[str, ...]
    fill: dict[str, float]
    zscore: RobustZScore | None
    detectors: dict[str, WindowDetector]
    rates: RateProfile | None
    seasonal: SeasonalBaseline | None
    time: TimeOfDayProfile | None
    home_zone: str | None
    thresholds: dict[str, float]
    novelty: NoveltyProfile | None
    known_endpoints: tuple[str, ...]
    n_train_events: int
    n_train_windows: int
    n_train_logins: int
    train_start: str | None
    train_end: str | None
    cold_start: bool
    window_confidence: float
    login_confidence: float

    @property
    def window_detectors(self) -> tuple[str, ...]:
        """Names of the detectors that score windows, in a fixed order."""
        if self.seasonal is not None:
            rest = ["rates"] if self.rates is not None else []
            return ("seasonal", *rest, *self.detectors)
        names = ["robust_zscore"] if self.zscore is not None else []
        names += ["rates"] if self.rates is not None else []
        names += ["seasonal"] if self.seasonal is not None else []
        names += list(self.detectors)
        return (*names, *(["time_of_day"] if self.time is not None else []))

    @property
    def window_kind(self) -> str:
        """Detector kind written on window anomalies: ``combined`` or the single detector."""
        names = self.window_detectors
        return "combined" if len(names) > 1 else (names[0] if names else "none")

    def expected(self) -> dict[str, float]:
        """The entity's usual value of each feature, in its own units (for reasons)."""
        if self.zscore is None:
            return dict(self.fill)
        center = self.zscore.center_
        return {
            f: float(np.expm1(c) if f in LOGGED_FEATURES else c)
            for f, c in zip(self.features, center.tolist(), strict=True)
        }

    def window_pvalues(self, X: np.ndarray, windows: pd.DataFrame) -> dict[str, np.ndarray]:
        """Per window detector (not time of day), the tail probability of each window.

        ``windows`` are in time order and may start with context windows (recent history the
        seasonal detector's level-shift part needs)."""
        out: dict[str, np.ndarray] = {}
        if self.zscore is not None:
            out["robust_zscore"] = self.zscore.pvalues(X)
        if self.rates is not None:
            out["rates"] = self.rates.pvalues(windows)
        if self.seasonal is not None:
            starts = pd.DatetimeIndex(windows["window_start"]).as_unit("ns").asi8
            out["seasonal"] = 1.0 - self.seasonal.score_samples(X, starts)
        for name, det in self.detectors.items():
            out[name] = 1.0 - det.score_samples(X)
        return out

    def score(self, events: Iterable[Mapping[str, Any]], *, score_from: Any = None) -> ScoreResult:
        """Score this entity's events: every active window and every login event.

        Events before ``score_from`` (a timestamp; None = none) are context only: they update
        the time-of-day and novelty profiles as if already scored but are not scored. The
        stored model is never changed.
        """
        frame = own_events(events_frame(events, self.entity_field), self.entity)
        windows = window_features(frame, self.config.window, self.known_endpoints)
        start_ns = _ns_or_min(score_from)
        w_start = pd.DatetimeIndex(windows["window_start"]).as_unit("ns").asi8
        emit_w = w_start + _window_ns(self.config) > start_ns
        n = len(windows)
        per: dict[str, np.ndarray] = {}
        if n and self.features:
            per = self.window_pvalues(feature_matrix(windows, self.features, self.fill), windows)
        local = self._local_ns(frame)
        first_local = _first_per_window(frame, local, self.config) if n else np.zeros(0, np.int64)
        utc = pd.DatetimeIndex(frame["timestamp"]).as_unit("ns").asi8 if n else np.zeros(0)
        first_utc = _first_per_window(frame, utc, self.config) if n else np.zeros(0, np.int64)
        if self.time is not None:
            alone = one_family_level(1.0 - self.thresholds["combined"])
            per["time_of_day"] = time_pvalues(self.time.copy(), first_local, alert_p=alone)
        if "robust_zscore" in per:
            per["session"] = session_pvalues(per["robust_zscore"], w_start, _window_ns(self.config))
        if self.seasonal is not None:  # its hour-of-week baseline already knows time and level
            per = {k: v for k, v in per.items() if k not in SEASONAL_REPLACES}
        p = combine_families(per, self.config.combine, n)
        out: dict[str, Any] = {
            "window_start": windows["window_start"],
            "window_end": windows["window_end"],
            "event_ids": windows["event_ids"],
            "n_events": windows["events"].to_numpy(dtype=int) if n else np.zeros(0, dtype=int),
            "local_ns": first_local,
            "utc_offset_min": np.round((first_local - first_utc) / 60e9).astype(int),
        }
        for name, pv in per.items():
            out[f"score_{name}"] = 1.0 - pv
        out |= _finished(1.0 - p, self.thresholds["combined"], self.window_confidence, self.config)
        win_frame = pd.DataFrame(out).loc[emit_w].reset_index(drop=True)
        keep = list(dict.fromkeys([*self.features, *RATE_COLUMNS]))
        features = windows.loc[emit_w, keep].reset_index(drop=True) if n else None
        logins = login_context(frame)
        login_ns = pd.DatetimeIndex(logins["timestamp"]).as_unit("ns").asi8
        emit_l = login_ns >= start_ns
        if self.novelty is not None and len(logins):
            alert_p = 1.0 - self.thresholds.get("novelty", 1.0)
            found = self.novelty.copy().score_sequence(
                logins, emit=emit_l.tolist(), alert_p=alert_p
            )
            details = [d for d in found if d is not None]
        else:
            details = []
        logins = logins.loc[emit_l].reset_index(drop=True)
        nov_p = np.array([d.p for d in details], dtype=float) if details else np.ones(len(logins))
        login_out: dict[str, Any] = {name: logins[name] for name in logins.columns}
        login_out |= {
            "window_start": logins["timestamp"],
            "window_end": logins["timestamp"],
            "event_ids": [[e] for e in logins["event_id"]],
            "score_novelty": 1.0 - nov_p,
        }
        threshold = self.thresholds.get("novelty", 1.0)
        login_out |= _finished(1.0 - nov_p, threshold, self.login_confidence, self.config)
        login_out["detail"] = details if details else [None] * len(logins)
        login_frame = pd.DataFrame(login_out).reset_index(drop=True)
        if details:
            login_frame["severity"] = [
                _fact_severity(sev, d.facts)
                for sev, d in zip(login_frame["severity"], details, strict=True)
            ]
        return ScoreResult(
            model=self,
            windows=win_frame,
            logins=login_frame,
            features=features,
            dropped_events=int(frame.attrs.get("dropped_events", 0)),
        )

    def _local_ns(self, frame: pd.DataFrame) -> np.ndarray:
        if frame.empty:
            return np.zeros(0, dtype=np.int64)
        return local_times_ns(
            pd.DatetimeIndex(frame["timestamp"]),
            [t if isinstance(t, str) else None for t in frame["tz"].tolist()],
            frame["utc_offset_minutes"].to_numpy(dtype=float),
            self.home_zone,
        )


def _ns_or_min(value: Any) -> int:
    if value is None:
        return int(np.iinfo(np.int64).min)
    return int(pd.Timestamp(iso_utc(value)).value)


def _window_ns(config: EngineConfig) -> int:
    return int(pd.Timedelta(config.window).value)


def _first_per_window(frame: pd.DataFrame, local: np.ndarray, config: EngineConfig) -> np.ndarray:
    """Local time of the first event of each active window (windows in time order)."""
    ts = pd.DatetimeIndex(frame["timestamp"]).as_unit("ns").asi8
    win = ts // _window_ns(config)
    starts = np.flatnonzero(np.r_[True, win[1:] != win[:-1]])
    return np.asarray(local[starts], dtype=np.int64)


FACT_SEVERITY = {0: "low", 1: "low", 2: "medium"}


def _fact_severity(severity: str | None, facts: tuple[str, ...]) -> str | None:
    """A flagged login's severity is what the number of independent facts changed says:
    one (a new phone at home) is low, two medium, three or more (place, network and device
    at once, or an impossible trip) high."""
    if not isinstance(severity, str):
        return None
    return FACT_SEVERITY.get(len(facts), "high")


def _finished(
    score: np.ndarray, threshold: float, confidence: float, config: EngineConfig
) -> dict[str, Any]:
    """Score, threshold, flagged, severity and confidence columns of scored items."""
    score = np.asarray(score, dtype=float)
    # a threshold raised to 1 by a dismissed item whose p underflowed flags nothing
    flagged = score >= threshold if threshold < 1.0 else np.zeros(len(score), dtype=bool)
    return {
        "score": score,
        "threshold": np.full(len(score), float(threshold)),
        "flagged": flagged,
        "severity": pd.Series(
            [
                severity_of(s, threshold, config.severity_factors) if f else None
                for s, f in zip(score.tolist(), flagged.tolist(), strict=True)
            ],
            dtype=object,
        ),
        "confidence": np.full(len(score), float(confidence)),
    }


def _threshold(base: float, dismissed_scores: np.ndarray) -> float:
    """``base`` raised above the best-scoring dismissed item (half its tail probability)."""
    if dismissed_scores.size == 0:
        return base
    top = float(dismissed_scores.max())
    return max(base, 1.0 - (1.0 - top) / 2.0)


def _confidence(n: float, full: float) -> float:
    return float(min(max(n / max(full, 1.0), MIN_CONFIDENCE), 1.0))


def fit_entity_model(
    entity: str,
    events: Iterable[Mapping[str, Any]],
    *,
    entity_field: str = "user_id",
    config: EngineConfig | None = None,
    population: Population | None = None,
    feedback: Feedback | None = None,
) -> EntityModel:
    """Fit one entity's model on its history and return it.

    Events of ``confirmed`` anomalies are dropped; events of ``dismissed`` ones count
    ``config.dismissed_weight`` times (a dismissed new phone is then a familiar one), and
    dismissed windows raise the window threshold above their scores. Dismissed logins do not
    raise the login threshold: that would blunt every other new fact. The history is
    summarized (:mod:`.summary`) and the summary fitted (:func:`fit_summary`).
    """
    config = config or EngineConfig()
    feedback = feedback or Feedback()
    events = list(events)
    frame = own_events(events_frame(events, entity_field), entity)
    if feedback.confirmed:
        frame = frame.loc[~frame["event_id"].isin(feedback.confirmed)].reset_index(drop=True)
    summary = summarize(
        frame,
        config.window,
        dismissed=feedback.dismissed,
        dismissed_weight=float(config.dismissed_weight),
    )
    model = fit_summary(
        entity, summary, entity_field=entity_field, config=config, population=population
    )
    windows = summary.windows
    if not feedback.dismissed or not any(
        any(e in feedback.dismissed for e in ids) for ids in windows.get("event_ids", [])
    ):
        return model
    return dataclasses.replace(model, thresholds=_dismissed_thresholds(model, events, feedback))


def fit_summary(
    entity: str,
    summary: HistorySummary,
    *,
    entity_field: str = "user_id",
    config: EngineConfig | None = None,
    population: Population | None = None,
) -> EntityModel:
    """Fit one entity's model on the summary of its history (:mod:`.summary`).

    Whatever the history, the entity's profiles are shrunk toward ``population``; without a
    population, raises :class:`~workers.engine.errors.InsufficientHistoryError` below 2 active
    windows.
    """
    config = config or EngineConfig()
    windows, logins = summary.windows, summary.logins
    n_windows = len(windows)
    if population is None and n_windows < 2:
        raise InsufficientHistoryError(
            f"{entity_field}={entity!r}: {n_windows} active window(s) and no population profile"
        )
    fitted = _fit_window_detectors(
        entity,
        windows,
        logins,
        windows["weight"].to_numpy(dtype=float),
        entity_field=entity_field,
        population=population,
        config=config,
    )
    home_zone = summary.home_zone()
    span = summary.span_ns
    return EntityModel(
        entity=str(entity),
        entity_field=entity_field,
        config=config,
        **fitted,
        time=_fit_time_of_day(summary, home_zone, population, config),
        home_zone=home_zone,
        thresholds=base_thresholds(config, population),
        novelty=_fit_novelty(logins, population, config),
        known_endpoints=summary.known_endpoints(MAX_KNOWN_ENDPOINTS),
        n_train_events=summary.n_events,
        n_train_windows=n_windows,
        n_train_logins=len(logins),
        train_start=iso_utc(pd.Timestamp(span[0], tz="UTC")) if span else None,
        train_end=iso_utc(pd.Timestamp(span[1], tz="UTC")) if span else None,
        cold_start=n_windows < config.min_train_windows,
        window_confidence=_confidence(n_windows, config.full_confidence_windows),
        login_confidence=_confidence(len(logins), 5 * config.min_train_logins),
    )


def base_thresholds(config: EngineConfig, population: Population | None) -> dict[str, float]:
    """Score thresholds before any review: logins at the target alert rate, windows at the
    level measured out of sample on the population (:mod:`.held_out`)."""
    factor = population.window_level_factor if population is not None else 1.0
    return {
        "combined": 1.0 - config.target_alert_rate * factor,
        "novelty": 1.0 - config.target_alert_rate,
    }


def _dismissed_thresholds(
    model: EntityModel, events: list[Mapping[str, Any]], feedback: Feedback
) -> dict[str, float]:
    """The window threshold raised above the dismissed windows' scores, scored as the fleet
    scores them: every detector, in context."""
    kept = [e for e in events if str(e.get("_id")) not in feedback.confirmed]
    scored = model.score(kept).windows
    hit = [any(e in feedback.dismissed for e in ids) for ids in scored["event_ids"]]
    raised = _threshold(model.thresholds["combined"], scored.loc[hit, "score"].to_numpy())
    return {**model.thresholds, "combined": raised}


def _fit_window_detectors(
    entity: str,
    windows: pd.DataFrame,
    logins: pd.DataFrame,
    weight: np.ndarray,
    *,
    entity_field: str,
    population: Population | None,
    config: EngineConfig,
) -> dict[str, Any]:
    """The window detectors' fields of an :class:`EntityModel` (features, fill, zscore, rates,
    seasonal, detectors), fitted on the entity's windows with review weights."""
    n_windows = len(windows)
    features, fill = _features_and_fill(windows, population)
    X = feature_matrix(windows, features, fill) if n_windows else np.zeros((0, len(features)))
    if np.isinf(X).any():  # e.g. bytes_sent sums beyond 1e308: refuse, never learn infinity
        bad = sorted({features[j] for j in np.nonzero(np.isinf(X))[1]})
        raise ValueError(f"{entity_field}={entity!r}: window features overflow to infinity {bad}")
    rates: RateProfile | None = None
    if "robust_zscore" in config.detectors:
        base_rates = population.rates if population is not None else {}
        if n_windows or base_rates:
            rho = population.rate_rho if population is not None else {}
            strength = population.rate_strength if population is not None else {}
            rates = RateProfile().fit(
                windows, prior=base_rates, weight=weight, rho=rho, strength=strength
            )
    seasonal = None
    if "seasonal" in config.detectors and n_windows >= config.min_train_windows and logins.empty:
        starts = pd.DatetimeIndex(windows["window_start"]).as_unit("ns").asi8
        seasonal = SeasonalBaseline(
            features=features, window_s=int(_window_ns(config) // 1_000_000_000)
        ).fit(X, starts, sample_weight=weight)
    detectors: dict[str, WindowDetector] = {}
    if n_windows >= config.min_train_windows:
        for name in config.window_detectors:
            if name in WINDOW_DETECTOR_CLASSES:
                detectors[name] = _make_detector(name, config).fit(X, sample_weight=weight)
    return {
        "features": tuple(features),
        "fill": {f: float(v) for f, v in fill.items()},
        "zscore": _fit_zscore(X, features, weight, population, config) if features else None,
        "rates": rates,
        "seasonal": seasonal,
        "detectors": detectors,
    }


def _fit_time_of_day(
    summary: HistorySummary,
    home_zone: str | None,
    population: Population | None,
    config: EngineConfig,
) -> TimeOfDayProfile | None:
    """The entity's active hours in its local time, shrunk toward its cohort's."""
    if "time_of_day" not in config.detectors:
        return None
    keys, weight = summary.local_hour_keys(home_zone)
    profile = TimeOfDayProfile.fit(
        keys * NS_PER_HOUR, weight=weight, prior_strength=config.time_prior_strength
    )
    if population is not None:  # shrink toward the cohort its own hours belong to
        prior = population.time_prior_for(profile.counts)
        profile.prior = prior / prior.sum()
    return profile


def _fit_novelty(
    logins: pd.DataFrame, population: Population | None, config: EngineConfig
) -> NoveltyProfile | None:
    """The entity's login context facts (with review weights), shrunk toward the population's."""
    if not config.uses_novelty:
        return None
    return NoveltyProfile(weights=dict(config.novelty_weights), alpha=config.novelty_prior).fit(
        logins[[c for c in logins.columns if c != "weight"]],
        priors=population.priors if population else {},
        sample_weight=logins["weight"].to_numpy(dtype=float),
    )


def cold_start_model(
    entity: str,
    population: Population,
    *,
    entity_field: str = "user_id",
    config: EngineConfig | None = None,
) -> EntityModel:
    """Return a model for an entity with no history: the population's, confidence < 1."""
    return fit_entity_model(
        entity, [], entity_field=entity_field, config=config, population=population
    )


def _features_and_fill(
    windows: pd.DataFrame, population: Population | None
) -> tuple[tuple[str, ...], dict[str, float]]:
    """Features with data in the entity's windows or the population, and each one's fill."""
    M = windows[list(Z_FEATURES)].to_numpy(dtype=float) if len(windows) else None
    own: dict[str, float] = {}
    if M is not None:
        for i, f in enumerate(Z_FEATURES):
            col = M[:, i]
            if not np.isnan(col).all():
                own[f] = float(np.nanmedian(col))
    pop = dict(population.fill) if population is not None else {}
    if len(windows) and own:
        names = [f for f in Z_FEATURES if f in own]
    else:
        names = [f for f in Z_FEATURES if f in pop]
    return tuple(names), {f: own.get(f, pop.get(f, 0.0)) for f in names}


def _fit_zscore(
    X: np.ndarray,
    features: tuple[str, ...],
    weight: np.ndarray,
    population: Population | None,
    config: EngineConfig,
) -> RobustZScore:
    own_c, own_s = z_profile(X, features, weight) if len(X) else (None, None)
    pc, ps = [], []
    for i, f in enumerate(features):
        if population is not None and f in population.z_center:
            pc.append(population.z_center[f])
            ps.append(population.z_scale[f])
        else:  # no population view of this feature: the entity's own (or a neutral) profile
            pc.append(float(own_c[i]) if own_c is not None else 0.0)
            ps.append(float(own_s[i]) if own_s is not None else 1.0)
    det = RobustZScore(
        logged=tuple(i for i, f in enumerate(features) if f in LOGGED_FEATURES),
        two_sided=tuple(i for i, f in enumerate(features) if f in TWO_SIDED_FEATURES),
        min_scale=tuple(Z_MIN_SCALE.get(f, 0.0) for f in features),
        prior_center=tuple(pc),
        prior_scale=tuple(ps),
        prior_strength=config.prior_windows,
        dof=config.tail_dof,
        n_tests=float(len({FEATURE_GROUPS.get(f, f) for f in features})),
    )
    return det.fit(X, sample_weight=weight if len(X) else None)


def _make_detector(name: str, config: EngineConfig) -> WindowDetector:
    cls = WINDOW_DETECTOR_CLASSES[name]
    if name == "isolation_forest":
        return cls(
            n_estimators=config.iforest_estimators,
            max_samples=config.iforest_max_samples,
            random_state=config.random_state,
        )
    return cls(n_components=config.svm_components, random_state=config.random_state)
