"""Engine configuration: one frozen, keyword-only dataclass.

Nothing is checked in ``__init__``; call :meth:`EngineConfig.validate` once where the config is
built (the worker layer does so at start-up). All scores in the engine are in [0, 1] with
**higher = more unusual**; ``target_alert_rate`` is the fraction of an entity's *normal* windows
or login events expected to cross its threshold.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import ConfigError
from .features import window_timedelta

WINDOW_DETECTORS: tuple[str, ...] = (
    "robust_zscore",
    "time_of_day",
    "seasonal",
    "isolation_forest",
    "one_class_svm",
)
EVENT_DETECTORS: tuple[str, ...] = ("novelty",)
KNOWN_DETECTORS: tuple[str, ...] = WINDOW_DETECTORS + EVENT_DETECTORS
COMBINATIONS: tuple[str, ...] = ("max", "fisher")

DEFAULT_NOVELTY_WEIGHTS: dict[str, float] = {
    "country": 1.0,
    "region": 0.25,
    "city": 0.25,
    "ip_prefix": 0.25,
    "asn": 0.5,
    "browser": 0.5,
    "os": 0.5,
    "device": 0.25,
    "os_version": 0.5,
}


@dataclass(frozen=True, kw_only=True)
class EngineConfig:
    """Settings of feature building, detectors, thresholds and confidence.

    Attributes:
        window: pandas offset alias of the feature window (active windows only).
        detectors: detectors to fit; window detectors combine into one window score,
            ``novelty`` scores single login events.
        combine: how window detector scores combine: ``max`` of tail evidence or ``fisher`` sum.
        target_alert_rate: expected fraction of normal items above threshold (per entity).
        severity_factors: (medium, high): an item is medium/high when its tail probability
            ``1 - score`` is this many times smaller than ``target_alert_rate``.
        min_train_windows: fewer active windows than this → window scoring uses the population.
        min_train_logins: fewer logins than this → novelty is calibrated on the population.
        full_confidence_windows: active windows of history at which confidence reaches 1.
        cold_start_confidence: cap of confidence while the population is used.
        prior_windows: pseudo-windows the population's window profile counts for in each
            entity's z-score profile (shrinkage of sparse entities).
        time_prior_strength: pseudo active hours of the population in the time-of-day model.
        tail_dof: degrees of freedom of the z-score detector's Student t tails.
        dismissed_weight: times a dismissed (benign) window or login counts in training.
        novelty_prior: ``alpha``, the new-value pseudo-count of each login-context field.
        novelty_weights: weight of each login-context field in the novelty score.
        iforest_estimators / iforest_max_samples: IsolationForest size (model size matters).
        svm_components: Nystroem components of the one-class SVM.
        max_reasons: reasons listed per anomaly.
        random_state: seed of every randomized estimator.
    """

    window: str = "15min"
    detectors: tuple[str, ...] = ("robust_zscore", "time_of_day", "seasonal", "novelty")
    combine: str = "max"
    target_alert_rate: float = 0.002
    severity_factors: tuple[float, float] = (10.0, 100.0)
    min_train_windows: int = 30
    min_train_logins: int = 10
    full_confidence_windows: int = 300
    cold_start_confidence: float = 0.5
    prior_windows: float = 10.0
    time_prior_strength: float = 1.5
    tail_dof: float = 10.0
    dismissed_weight: int = 10
    novelty_prior: float = 1.0
    novelty_weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_NOVELTY_WEIGHTS))
    iforest_estimators: int = 50
    iforest_max_samples: int = 128
    svm_components: int = 50
    max_reasons: int = 3
    random_state: int = 0

    @property
    def window_detectors(self) -> tuple[str, ...]:
        """Configured detectors that score windows, in configured order."""
        return tuple(d for d in self.detectors if d in WINDOW_DETECTORS)

    @property
    def uses_novelty(self) -> bool:
        """True when login events are scored one by one by the novelty detector."""
        return "novelty" in self.detectors

    def validate(self) -> EngineConfig:
        """Check every value; return ``self`` or raise :class:`ConfigError`."""
        try:
            window_timedelta(self.window)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"window {self.window!r} is not a fixed pandas offset") from exc
        unknown = [d for d in self.detectors if d not in KNOWN_DETECTORS]
        if unknown or not self.detectors:
            raise ConfigError(f"unknown or no detectors {unknown}; known: {KNOWN_DETECTORS}")
        if self.combine not in COMBINATIONS:
            raise ConfigError(f"combine must be one of {COMBINATIONS}")
        if not 0.0 < self.target_alert_rate < 0.5:
            raise ConfigError("target_alert_rate must be in (0, 0.5)")
        medium, high = self.severity_factors
        if not 1.0 <= medium <= high:
            raise ConfigError("severity_factors must satisfy 1 <= medium <= high")
        if min(self.min_train_windows, self.min_train_logins, self.full_confidence_windows) < 1:
            raise ConfigError("history minimums must be >= 1")
        if not 0.0 < self.cold_start_confidence < 1.0:
            raise ConfigError("cold_start_confidence must be in (0, 1)")
        if self.dismissed_weight < 1 or self.novelty_prior <= 0:
            raise ConfigError("dismissed_weight must be >= 1 and novelty_prior > 0")
        if self.prior_windows < 0 or self.time_prior_strength <= 0 or self.tail_dof <= 0:
            raise ConfigError("prior_windows >= 0, time_prior_strength > 0 and tail_dof > 0")
        if self.iforest_estimators < 1 or self.iforest_max_samples < 2 or self.svm_components < 1:
            raise ConfigError("estimator sizes must be positive")
        return self
