"""Detectors. ``WINDOW_DETECTOR_CLASSES`` follow the scikit-learn estimator contract and are
calibrated on the entity's windows; ``RobustZScore`` and ``TimeOfDayProfile`` give
analytic tail probabilities; ``novelty`` scores single login events. Every detector's
``score_samples`` is in [0, 1], higher = more unusual."""

from __future__ import annotations

from .base import WindowDetector
from .isolation_forest import CompactIsolationForest
from .novelty import NoveltyProfile
from .one_class_svm import NystroemOneClassSVM
from .robust_zscore import RobustZScore
from .time_of_day import TimeOfDayProfile

WINDOW_DETECTOR_CLASSES: dict[str, type[WindowDetector]] = {
    "isolation_forest": CompactIsolationForest,
    "one_class_svm": NystroemOneClassSVM,
}

__all__ = [
    "WINDOW_DETECTOR_CLASSES",
    "CompactIsolationForest",
    "NoveltyProfile",
    "NystroemOneClassSVM",
    "RobustZScore",
    "TimeOfDayProfile",
    "WindowDetector",
]
