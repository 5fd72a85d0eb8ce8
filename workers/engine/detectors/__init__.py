"""Detectors. Window detectors follow the scikit-learn estimator contract; ``novelty`` scores
single login events. Every detector's ``score_samples`` is in [0, 1], higher = more unusual."""

from __future__ import annotations

from .base import WindowDetector
from .isolation_forest import CompactIsolationForest
from .novelty import NoveltyProfile
from .one_class_svm import NystroemOneClassSVM
from .robust_zscore import RobustZScore

WINDOW_DETECTOR_CLASSES: dict[str, type[WindowDetector]] = {
    "robust_zscore": RobustZScore,
    "isolation_forest": CompactIsolationForest,
    "one_class_svm": NystroemOneClassSVM,
}

__all__ = [
    "WINDOW_DETECTOR_CLASSES",
    "CompactIsolationForest",
    "NoveltyProfile",
    "NystroemOneClassSVM",
    "RobustZScore",
    "WindowDetector",
]
