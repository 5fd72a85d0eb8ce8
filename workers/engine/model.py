"""Per-entity model: fit on one entity's history, score new events, build anomaly documents.

``fit_entity_model`` learns what is normal for one entity: window detectors over its active
windows (combined into one window score) and a novelty profile of its login context (one score
per login, on arrival). With too little history the entity is scored against the population
(:mod:`workers.engine.population`) with ``confidence`` < 1; confidence grows with history.
All scores are in [0, 1], higher = more unusual; thresholds are per entity.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .anomaly import iso_utc
from .calibration import TailCalibrator
from .config import EngineConfig
from .detectors import WINDOW_DETECTOR_CLASSES, NoveltyProfile, WindowDetector
from .detectors.novelty import FieldPrior
from .detectors.robust_zscore import robust_profile
from .errors import InsufficientHistoryError
from .features import (
    TWO_SIDED_FEATURES,
    WINDOW_FEATURES,
    events_frame,
    feature_matrix,
    hour_rarity,
    login_context,
    min_scales,
    relative_min_scales,
    window_features,
)
from .feedback import Feedback
from .population import Population
from .scoring import ScoreResult, combine_evidence, severity_of

MAX_KNOWN_ENDPOINTS = 300
MIN_CONFIDENCE = 0.1


@dataclass
class EntityModel:
    """Everything needed to score one entity; all fitted state is plain data.

    ``thresholds`` maps each window detector, ``combined`` and ``novelty`` to a calibrated
    threshold in [0, 1]. ``explain_center`` / ``explain_scale`` are the entity's robust window
    profile used for reasons (and for the robust z-score detector).
    """

    entity: str
    entity_field: str
    config: EngineConfig
    features: tuple[str, ...]
    fill: dict[str, float]
    detectors: dict[str, WindowDetector]
    combiner: TailCalibrator | None
    thresholds: dict[str, float]
    novelty: NoveltyProfile | None
    explain_center: dict[str, float]
    explain_scale: dict[str, float]
    hour_counts: list[float]
    weekday_counts: list[float]
    known_endpoints: tuple[str, ...]
    n_train_events: int
    n_train_windows: int
    n_train_logins: int
    train_start: str | None
    train_end: str | None
    cold_start: bool
    window_confidence: float
    login_confidence: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def window_kind(self) -> str:
        """Detector kind written on window anomalies: ``combined`` or the single detector."""
        return "combined" if len(self.detectors) > 1 else next(iter(self.detectors), "none")

    def window_scores(self, X: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Return per-detector and combined calibrated scores for a feature matrix."""
        per = {name: det.score_samples(X) for name, det in self.detectors.items()}
        if self.combiner is None:
            combined = next(iter(per.values())) if per else np.zeros(len(X))
        else:
            combined = self.combiner.transform(combine_evidence(per, self.config.combine))
        return per, combined

    def z_scores(self, X: np.ndarray) -> np.ndarray:
        """Directional robust z of each feature against the entity's own profile."""
        center = np.array([self.explain_center[f] for f in self.features])
        scale = np.array([self.explain_scale[f] for f in self.features])
        z = (X - center) / scale
        two = np.array([f in TWO_SIDED_FEATURES for f in self.features], dtype=bool)
        return np.where(two, np.abs(z), z)

    def score(self, events: Iterable[Mapping[str, Any]]) -> ScoreResult:
        """Score events of this entity: every active window and every login event."""
        frame = _own_events(events_frame(events, self.entity_field), self.entity)
        windows = window_features(frame, self.config.window, self.known_endpoints)
        n = len(windows)
        if n:
            windows["hour_rarity"] = hour_rarity(windows["window_start"], self.hour_counts)
        if n and self.detectors:
            per, combined = self.window_scores(feature_matrix(windows, self.features, self.fill))
        else:
            per = {name: np.zeros(n) for name in self.detectors}
            combined = np.zeros(n)
        out: dict[str, Any] = {
            "window_start": windows["window_start"],
            "window_end": windows["window_end"],
            "event_ids": windows["event_ids"],
            "n_events": windows["events"].to_numpy(dtype=int) if n else np.zeros(0, dtype=int),
        }
        for name, s in per.items():
            out[f"score_{name}"] = s
            out[f"threshold_{name}"] = np.full(n, float(self.thresholds[name]))
            out[f"flagged_{name}"] = s >= self.thresholds[name]
        out |= _finished(combined, self.thresholds["combined"], self.window_confidence, self.config)
        logins = login_context(frame)
        if self.novelty is not None and len(logins):
            nov = self.novelty.score_samples(logins)
            threshold = self.thresholds["novelty"]
        else:
            nov, threshold = np.zeros(len(logins)), 1.0
        login_out: dict[str, Any] = {name: logins[name] for name in logins.columns}
        login_out |= {
            "window_start": logins["timestamp"],
            "window_end": logins["timestamp"],
            "event_ids": [[e] for e in logins["event_id"]],
            "score_novelty": nov,
        }
        login_out |= _finished(nov, threshold, self.login_confidence, self.config)
        features = windows[list(self.features)].reset_index(drop=True) if n else None
        return ScoreResult(
            model=self,
            windows=pd.DataFrame(out).reset_index(drop=True),
            logins=pd.DataFrame(login_out).reset_index(drop=True),
            features=features,
            dropped_events=int(frame.attrs.get("dropped_events", 0)),
        )


def _finished(
    score: np.ndarray, threshold: float, confidence: float, config: EngineConfig
) -> dict[str, Any]:
    """Score, threshold, flagged, severity and confidence columns of scored items."""
    score = np.asarray(score, dtype=float)
    flagged = score >= threshold
    return {
        "score": score,
        "threshold": np.full(len(score), float(threshold)),
        "flagged": flagged,
        "severity": [
            severity_of(s, threshold, config.severity_factors) if f else None
            for s, f in zip(score.tolist(), flagged.tolist(), strict=True)
        ],
        "confidence": np.full(len(score), float(confidence)),
    }


def _own_events(frame: pd.DataFrame, entity: str) -> pd.DataFrame:
    own = frame["entity"].map(lambda e: e is None or str(e) == str(entity))
    kept = frame.loc[own.to_numpy(dtype=bool)].reset_index(drop=True)
    kept.attrs = dict(frame.attrs)
    return kept


def _threshold(base: float, dismissed_scores: np.ndarray) -> float:
    """``base`` raised above the best-scoring dismissed item (half its tail probability)."""
    if dismissed_scores.size == 0:
        return base
    top = float(dismissed_scores.max())
    return max(base, 1.0 - (1.0 - top) / 2.0)


def _confidence(n: float, full: float, cold: bool, config: EngineConfig) -> float:
    conf = min(1.0, n / max(full, 1.0))
    cap = config.cold_start_confidence if cold else 1.0
    return float(min(max(conf, MIN_CONFIDENCE), cap))


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
    ``config.dismissed_weight`` times and raise the thresholds above their scores. With fewer
    than ``config.min_train_windows`` active windows the windows are scored against
    ``population`` (cold start); without a population, raises
    :class:`~workers.engine.errors.InsufficientHistoryError` if there are < 2 windows.
    """
    config = config or EngineConfig()
    feedback = feedback or Feedback()
    frame = _own_events(events_frame(events, entity_field), entity)
    if feedback.confirmed:
        frame = frame.loc[~frame["event_id"].isin(feedback.confirmed)].reset_index(drop=True)
    windows = window_features(frame, config.window)
    hour_counts = _counts([t.hour for t in windows["window_start"]], 24)
    cold = len(windows) < config.min_train_windows
    if cold and population is not None:
        hour_counts = list(population.hour_counts)
    if len(windows):
        windows["hour_rarity"] = hour_rarity(
            windows["window_start"], hour_counts, leave_one_out=not cold
        )
    dismissed_w = np.array(
        [any(e in feedback.dismissed for e in ids) for ids in windows["event_ids"]], dtype=bool
    )
    weight = np.where(dismissed_w, float(config.dismissed_weight), 1.0)
    n_windows = len(windows)
    rate_base = 1.0 - config.target_alert_rate
    detectors: dict[str, WindowDetector] = {}
    combiner: TailCalibrator | None = None
    thresholds: dict[str, float] = {}
    if cold and population is not None and population.features:
        features, fill = population.features, dict(population.fill)
        detectors["robust_zscore"] = population.window_detector()
        X = feature_matrix(windows, features, fill) if n_windows else np.zeros((0, len(features)))
    elif n_windows >= 2:
        features, fill = _present_features(windows)
        X = feature_matrix(windows, features, fill)
        for name in config.window_detectors or ("robust_zscore",):
            detectors[name] = _make_detector(name, features, config).fit(X, sample_weight=weight)
        if len(detectors) > 1:
            per = {name: det.score_samples(X) for name, det in detectors.items()}
            combiner = TailCalibrator.fit(
                combine_evidence(per, config.combine), scale_floor=0.5, sample_weight=weight
            )
    else:
        raise InsufficientHistoryError(
            f"{entity_field}={entity!r}: {n_windows} active window(s) and no population profile"
        )
    model_center, model_scale = _explain_profile(windows, features, fill, X, weight, population)
    novelty = None
    logins = login_context(frame)
    if config.uses_novelty:
        in_sample = logins["event_id"].isin(feedback.dismissed).to_numpy(dtype=bool)
        priors: Mapping[str, FieldPrior] = population.priors if population else {}
        novelty = NoveltyProfile(
            weights=config.novelty_weights, prior_strength=config.novelty_prior
        ).fit(
            logins,
            priors=priors,
            sample_weight=np.where(in_sample, float(config.dismissed_weight), 1.0),
            in_sample=in_sample,
            min_logins=config.min_train_logins,
            fallback=population.novelty_calibrator if population else None,
        )
        dismissed_nov = novelty.score_samples(logins.loc[in_sample]) if in_sample.any() else None
        thresholds["novelty"] = _threshold(
            rate_base, dismissed_nov if dismissed_nov is not None else np.zeros(0)
        )
    model = EntityModel(
        entity=str(entity),
        entity_field=entity_field,
        config=config,
        features=tuple(features),
        fill={f: float(v) for f, v in fill.items()},
        detectors=detectors,
        combiner=combiner,
        thresholds=thresholds,
        novelty=novelty,
        explain_center=model_center,
        explain_scale=model_scale,
        hour_counts=hour_counts,
        weekday_counts=_counts([t.weekday() for t in windows["window_start"]], 7),
        known_endpoints=_known_endpoints(frame),
        n_train_events=len(frame),
        n_train_windows=n_windows,
        n_train_logins=len(logins),
        train_start=_iso(frame["timestamp"].min()) if len(frame) else None,
        train_end=_iso(frame["timestamp"].max()) if len(frame) else None,
        cold_start=bool(cold and population is not None),
        window_confidence=_confidence(n_windows, config.full_confidence_windows, cold, config),
        login_confidence=_confidence(
            len(logins),
            5 * config.min_train_logins,
            len(logins) < config.min_train_logins,
            config,
        ),
    )
    if n_windows and detectors:
        per, combined = model.window_scores(X)
        for name, s in per.items():
            thresholds[name] = _threshold(rate_base, s[dismissed_w])
        thresholds["combined"] = _threshold(rate_base, combined[dismissed_w])
    else:
        thresholds.update({name: rate_base for name in detectors} | {"combined": rate_base})
    return model


def cold_start_model(
    entity: str,
    population: Population,
    *,
    entity_field: str = "user_id",
    config: EngineConfig | None = None,
) -> EntityModel:
    """Return a model for an entity with no history: population scoring, confidence < 1."""
    return fit_entity_model(
        entity, [], entity_field=entity_field, config=config, population=population
    )


def _make_detector(name: str, features: tuple[str, ...], config: EngineConfig) -> WindowDetector:
    cls = WINDOW_DETECTOR_CLASSES[name]
    if name == "robust_zscore":
        two = tuple(i for i, f in enumerate(features) if f in TWO_SIDED_FEATURES)
        return cls(
            two_sided=two,
            min_scale=min_scales(features),
            relative_min_scale=relative_min_scales(features),
        )
    if name == "isolation_forest":
        return cls(
            n_estimators=config.iforest_estimators,
            max_samples=config.iforest_max_samples,
            random_state=config.random_state,
        )
    return cls(n_components=config.svm_components, random_state=config.random_state)


def _explain_profile(
    windows: pd.DataFrame,
    features: tuple[str, ...],
    fill: Mapping[str, float],
    X: np.ndarray,
    weight: np.ndarray,
    population: Population | None,
) -> tuple[dict[str, float], dict[str, float]]:
    if len(X) >= 2:
        center, scale = robust_profile(
            X, weight, np.asarray(min_scales(features)), np.asarray(relative_min_scales(features))
        )
        prof_c = dict(zip(features, center.tolist(), strict=True))
        prof_s = dict(zip(features, scale.tolist(), strict=True))
    else:
        prof_c, prof_s = {}, {}
    if population is not None and len(X) < 2:
        prof_c = {f: population.center.get(f, fill[f]) for f in features}
        prof_s = {f: population.scale.get(f, 1.0) for f in features}
    for f in features:
        prof_c.setdefault(f, float(fill[f]))
        prof_s.setdefault(f, 1.0)
    return prof_c, prof_s


def _present_features(windows: pd.DataFrame) -> tuple[tuple[str, ...], dict[str, float]]:
    """Window features with at least one value, and each one's median (the NaN fill)."""
    M = windows[list(WINDOW_FEATURES)].to_numpy(dtype=float)
    present = [i for i in range(M.shape[1]) if not np.isnan(M[:, i]).all()]
    medians = np.nanmedian(M[:, present], axis=0) if present else np.zeros(0)
    features = tuple(WINDOW_FEATURES[i] for i in present)
    return features, dict(zip(features, medians.tolist(), strict=True))


def _counts(values: list[int], size: int) -> list[float]:
    return np.bincount(np.asarray(values, dtype=int), minlength=size)[:size].astype(float).tolist()


def _known_endpoints(frame: pd.DataFrame) -> tuple[str, ...]:
    counts = frame["endpoint"].dropna().value_counts()
    return tuple(sorted(str(e) for e in counts.index[:MAX_KNOWN_ENDPOINTS]))


def _iso(ts: Any) -> str:
    return iso_utc(ts)
