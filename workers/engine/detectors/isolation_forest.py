"""Isolation forest on window features, stored compactly.

scikit-learn's ``IsolationForest`` grows the trees; each tree is then flattened to three small
arrays (split feature ``int8``, split threshold / leaf path length ``float32``, right child
``int16``; the left child of a node is always the next node in scikit-learn's depth-first
order). Scoring walks those arrays, reproducing ``-IsolationForest.score_samples``: the raw
score ``2 ** (-mean path length / c(max_samples))`` is in (0, 1), higher = more unusual. A
50-tree, 128-sample forest over 18 features is about 25 KiB of arrays.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from sklearn.ensemble import IsolationForest

from .base import WindowDetector


def average_path_length(n: np.ndarray) -> np.ndarray:
    """Average unsuccessful-search path length c(n) of a BST with ``n`` points (Liu et al.)."""
    n = np.asarray(n, dtype=float)
    out = np.zeros_like(n)
    out[n == 2] = 1.0
    big = n > 2
    out[big] = 2.0 * (np.log(n[big] - 1.0) + np.euler_gamma) - 2.0 * (n[big] - 1.0) / n[big]
    return out


class CompactIsolationForest(WindowDetector):
    """Isolation forest whose fitted state is a few flat arrays.

    Parameters:
        n_estimators: number of trees.
        max_samples: samples per tree (capped at the number of training windows).
        random_state: seed for reproducible trees.
    """

    _state_attrs: ClassVar[tuple[str, ...]] = (
        "feature_",
        "value_",
        "right_",
        "offsets_",
        "depth_limit_",
        "norm_",
    )
    _scale_floor: ClassVar[float] = 0.02

    def __init__(
        self, *, n_estimators: int = 50, max_samples: int = 128, random_state: int | None = None
    ) -> None:
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.random_state = random_state

    def _fit_raw(self, X: np.ndarray, sample_weight: np.ndarray | None) -> None:
        forest = IsolationForest(
            n_estimators=self.n_estimators,
            max_samples=min(self.max_samples, X.shape[0]),
            random_state=self.random_state,
        ).fit(X, sample_weight=sample_weight)
        features, values, rights, offsets = [], [], [], [0]
        depth_limit = 0
        for tree, cols in zip(forest.estimators_, forest.estimators_features_, strict=True):
            t = tree.tree_
            left, right = t.children_left, t.children_right
            internal = left >= 0
            if not np.all(left[internal] == np.flatnonzero(internal) + 1):
                raise RuntimeError("unexpected tree layout: left child is not the next node")
            depth = np.zeros(t.node_count)
            for node in range(t.node_count):  # parents precede children in depth-first order
                if internal[node]:
                    depth[left[node]] = depth[right[node]] = depth[node] + 1
            leaf_value = depth + average_path_length(t.n_node_samples)
            feat = np.where(internal, np.asarray(cols)[np.maximum(t.feature, 0)], -1)
            features.append(feat.astype(np.int16))
            values.append(np.where(internal, t.threshold, leaf_value).astype(np.float32))
            rights.append(np.where(internal, right, 0).astype(np.int16))
            offsets.append(offsets[-1] + t.node_count)
            depth_limit = max(depth_limit, int(depth.max()) + 1)
        self.feature_ = np.concatenate(features)
        self.value_ = np.concatenate(values)
        self.right_ = np.concatenate(rights)
        self.offsets_ = np.asarray(offsets, dtype=np.int32)
        self.depth_limit_ = depth_limit
        self.norm_ = float(average_path_length(np.array([forest.max_samples_]))[0])

    def _raw(self, X: np.ndarray) -> np.ndarray:
        X32 = X.astype(np.float32)
        n = X32.shape[0]
        starts = self.offsets_[:-1].astype(np.int64)
        nodes = np.broadcast_to(starts, (n, starts.size)).copy()
        rows = np.arange(n)[:, None]
        for _ in range(int(self.depth_limit_)):
            feat = self.feature_[nodes].astype(np.int64)
            internal = feat >= 0
            if not internal.any():
                break
            x = X32[rows, np.maximum(feat, 0)]
            go_left = x <= self.value_[nodes]
            child = np.where(go_left, nodes + 1, starts + self.right_[nodes])
            nodes = np.where(internal, child, nodes)
        path = self.value_[nodes].astype(np.float64).mean(axis=1)
        norm = self.norm_ if self.norm_ > 0 else 1.0
        return np.power(2.0, -path / norm)
