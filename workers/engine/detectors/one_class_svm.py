"""Linear-time one-class SVM: robust scaling → Nystroem RBF features → SGD one-class SVM.

After fitting with scikit-learn, the pipeline is folded into plain arrays: the scaled Nystroem
components and one weight vector (``normalization_.T @ coef_``), so scoring is a kernel row and
a dot product. Raw score = ``offset - decision`` (higher = more unusual).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from sklearn.kernel_approximation import Nystroem
from sklearn.linear_model import SGDOneClassSVM

from .base import WindowDetector
from .robust_zscore import robust_profile

Z_CLIP = 50.0
CHUNK = 1024


class NystroemOneClassSVM(WindowDetector):
    """One-class SVM approximated with Nystroem features and SGD (linear in n_windows).

    Parameters:
        n_components: Nystroem components (capped at the number of training windows).
        nu: upper bound on the fraction of training outliers.
        gamma: RBF width on robust-scaled features; None → 1 / n_features.
        random_state: seed of component sampling and SGD.
    """

    _state_attrs: ClassVar[tuple[str, ...]] = (
        "center_",
        "scale_",
        "components_",
        "weights_",
        "offset_",
        "gamma_",
    )
    _scale_floor: ClassVar[float] = 0.05

    def __init__(
        self,
        *,
        n_components: int = 50,
        nu: float = 0.05,
        gamma: float | None = None,
        random_state: int | None = None,
    ) -> None:
        self.n_components = n_components
        self.nu = nu
        self.gamma = gamma
        self.random_state = random_state

    def _scaled(self, X: np.ndarray) -> np.ndarray:
        return np.clip((X - self.center_) / self.scale_, -Z_CLIP, Z_CLIP)

    def _fit_raw(self, X: np.ndarray, sample_weight: np.ndarray | None) -> None:
        self.center_, self.scale_ = robust_profile(X, sample_weight)
        Z = self._scaled(X)
        self.gamma_ = float(self.gamma if self.gamma is not None else 1.0 / max(X.shape[1], 1))
        nystroem = Nystroem(
            gamma=self.gamma_,
            n_components=min(self.n_components, X.shape[0]),
            random_state=self.random_state,
        ).fit(Z)
        svm = SGDOneClassSVM(nu=self.nu, random_state=self.random_state, tol=1e-4)
        svm.fit(nystroem.transform(Z), sample_weight=sample_weight)
        self.components_ = nystroem.components_.astype(float)
        self.weights_ = (nystroem.normalization_.T @ svm.coef_.ravel()).astype(float)
        self.offset_ = float(np.ravel(svm.offset_)[0])

    def _raw(self, X: np.ndarray) -> np.ndarray:
        Z = self._scaled(X)
        out = np.empty(Z.shape[0])
        for start in range(0, Z.shape[0], CHUNK):  # row by row: batch-independent results
            block = Z[start : start + CHUNK]
            sq = ((block[:, None, :] - self.components_[None, :, :]) ** 2).sum(axis=2)
            kernel = np.exp(-self.gamma_ * sq)
            out[start : start + CHUNK] = self.offset_ - np.einsum("ij,j->i", kernel, self.weights_)
        return out
