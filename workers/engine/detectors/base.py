"""The window-detector contract, scikit-learn style.

A detector learns one entity's normal windows. ``fit(X, y=None)`` returns ``self``; fitted
attributes end in ``_``; ``__init__`` only stores parameters. ``raw_score_samples`` returns the
detector's native score and ``score_samples`` a calibrated one in [0, 1] — for both, **higher
= more unusual**. Calibration is a :class:`~workers.engine.calibration.TailCalibrator` fitted on
the training raw scores, so ``1 - score`` reads as a tail probability under the entity's history.

Fitted state is plain data (numpy arrays, floats, ints) exposed by :meth:`to_state`, so a model
can be stored without pickle (see :mod:`workers.engine.persistence`).
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from ..calibration import TailCalibrator


class WindowDetector(BaseEstimator):
    """Base class: subclasses implement ``_fit_raw`` and ``_raw`` and list ``_state_attrs``."""

    _state_attrs: ClassVar[tuple[str, ...]] = ()
    _scale_floor: ClassVar[float] = 0.5

    def fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> Self:
        """Learn normal windows from ``X`` (n_windows × n_features); return ``self``."""
        X = validate_data(self, X, dtype=np.float64)
        weight = _check_sample_weight(sample_weight, X) if sample_weight is not None else None
        self._fit_raw(X, weight)
        self.calibrator_ = TailCalibrator.fit(
            self._raw(X), scale_floor=self._scale_floor, sample_weight=weight
        )
        return self

    def raw_score_samples(self, X: Any) -> np.ndarray:
        """Return native scores, higher = more unusual (units depend on the detector)."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return self._raw(X)

    def score_samples(self, X: Any) -> np.ndarray:
        """Return calibrated scores in [0, 1], higher = more unusual."""
        return self.calibrator_.transform(self.raw_score_samples(X))

    def _fit_raw(self, X: np.ndarray, sample_weight: np.ndarray | None) -> None:
        raise NotImplementedError

    def _raw(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def to_state(self) -> dict[str, Any]:
        """Return parameters and fitted state as plain data (arrays, numbers, strings)."""
        check_is_fitted(self)
        return {
            "params": self.get_params(),
            "n_features_in_": int(self.n_features_in_),
            "fitted": {name: getattr(self, name) for name in self._state_attrs},
            "calibrator": self.calibrator_.to_state(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        """Rebuild a fitted detector from :meth:`to_state` output (no code is loaded)."""
        det = cls(**state["params"])
        det.n_features_in_ = int(state["n_features_in_"])
        for name in cls._state_attrs:
            setattr(det, name, state["fitted"][name])
        det.calibrator_ = TailCalibrator.from_state(state["calibrator"])
        return det
