"""Window detectors: the scikit-learn contract (forest, SVM), the shrunk robust z-score profile,
and seeded quality floors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score
from sklearn.utils.estimator_checks import parametrize_with_checks

from workers.engine.calibration import TailCalibrator
from workers.engine.detectors import CompactIsolationForest, NystroemOneClassSVM, RobustZScore

pytestmark = pytest.mark.unit

DETECTORS = [
    CompactIsolationForest(n_estimators=20, random_state=0),
    NystroemOneClassSVM(n_components=20, random_state=0),
]


def _expected_failures(estimator: object) -> dict[str, str]:
    if isinstance(estimator, CompactIsolationForest):
        # as for sklearn's own IsolationForest: trees are grown on random subsamples, so a
        # weight of 2 is not the same random draw as a repeated row.
        return {"check_sample_weight_equivalence_on_dense_data": "random subsampling per tree"}
    return {}


@parametrize_with_checks(DETECTORS, expected_failed_checks=_expected_failures)
def test_sklearn_estimator_contract(estimator: object, check: Any) -> None:
    check(estimator)


def _seeded(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    train = rng.normal(size=(600, 6))
    normal = rng.normal(size=(300, 6))
    outliers = rng.normal(size=(30, 6))
    outliers[np.arange(30), rng.integers(0, 6, 30)] += rng.choice([-1, 1], 30) * 6.0
    X = np.vstack([normal, outliers])
    y = np.r_[np.zeros(300), np.ones(30)]
    return train, X, y


@pytest.mark.parametrize(
    ("detector", "floor"),
    [
        (RobustZScore(two_sided=tuple(range(6))), 0.95),
        (CompactIsolationForest(random_state=0), 0.80),  # measured 0.84: axis outliers in 6-d
        (NystroemOneClassSVM(random_state=0), 0.85),
    ],
)
def test_seeded_quality_floor(detector: Any, floor: float) -> None:
    train, X, y = _seeded()
    scores = detector.fit(train).score_samples(X)
    assert scores.min() >= 0.0 and scores.max() <= 1.0
    assert roc_auc_score(y, scores) >= floor


def test_compact_forest_reproduces_sklearn_isolation_forest() -> None:
    train, X, _ = _seeded(1)
    compact = CompactIsolationForest(n_estimators=30, max_samples=64, random_state=3).fit(train)
    reference = IsolationForest(n_estimators=30, max_samples=64, random_state=3).fit(train)
    np.testing.assert_allclose(compact.raw_score_samples(X), -reference.score_samples(X), rtol=1e-6)


def test_robust_zscore_counts_only_upward_deviation_unless_two_sided() -> None:
    train = np.random.default_rng(0).normal(10.0, 1.0, size=(500, 2))
    det = RobustZScore(two_sided=(1,)).fit(train)
    p = det.pvalues(np.array([[0.0, 10.0], [10.0, 0.0], [20.0, 10.0], [10.0, 20.0]]))
    low_first, low_second, high_first, high_second = p
    assert low_first == 1.0  # ten below the usual on an upward-only feature: not unusual
    assert low_second < 1e-3 and high_first < 1e-3 and high_second < 1e-3
    assert det.score_samples(np.array([[0.0, 10.0]]))[0] == 0.0


def test_robust_zscore_pvalues_are_bonferroni_over_feature_t_tails() -> None:
    rng = np.random.default_rng(1)
    det = RobustZScore(dof=4.0).fit(rng.normal(0.0, 1.0, size=(2000, 3)))
    X = rng.normal(0.0, 1.0, size=(5, 3))
    per = det.feature_pvalues(X)
    assert per.shape == (5, 3) and ((per >= 0) & (per <= 1)).all()
    np.testing.assert_allclose(det.pvalues(X), np.minimum(per.min(axis=1) * 3, 1.0))
    np.testing.assert_allclose(det.score_samples(X), 1.0 - det.pvalues(X))
    # new draws from the training distribution: the alert rate at p <= a is about <= a
    fresh = rng.normal(0.0, 1.0, size=(20000, 3))
    for a in (0.01, 0.05, 0.2):
        assert np.mean(det.pvalues(fresh) <= a) <= a * 1.2


def test_robust_zscore_shrinks_a_sparse_entity_toward_the_population() -> None:
    prior = {"prior_center": (5.0,), "prior_scale": (1.0,), "prior_strength": 10.0}
    own = np.full((3, 1), 1.0)  # three windows at 1.0, far below the population's 5.0
    sparse = RobustZScore(**prior).fit(own)  # type: ignore[arg-type]
    dense = RobustZScore(**prior).fit(np.full((3000, 1), 1.0))  # type: ignore[arg-type]
    alone = RobustZScore().fit(own)
    assert sparse.center_[0] == pytest.approx((3 * 1.0 + 10 * 5.0) / 13)
    assert dense.center_[0] == pytest.approx(1.0, abs=0.02)
    assert alone.center_[0] == pytest.approx(1.0)
    empty = RobustZScore(**prior).fit(np.zeros((0, 1)))  # type: ignore[arg-type]
    assert empty.center_[0] == pytest.approx(5.0) and empty.scale_[0] == pytest.approx(1.0)
    # the population's spread keeps a sparse entity's 4.0 ordinary; its own would not
    probe = np.array([[4.0]])
    assert sparse.pvalues(probe)[0] > 0.1 > dense.pvalues(probe)[0]


def test_robust_zscore_logged_columns_measure_ratios_not_differences() -> None:
    rng = np.random.default_rng(2)
    train = np.exp(rng.normal(np.log(1000.0), 0.3, size=(400, 1)))
    logged = RobustZScore(logged=(0,)).fit(train)
    raw = RobustZScore().fit(train)
    assert np.expm1(logged.center_[0]) == pytest.approx(1000.0, rel=0.05)
    # on log1p scale, 10x the usual is as far above it as 0.1x is below
    z = logged.z_scores(np.array([[10_000.0], [100.0]]))[:, 0]
    assert z[0] == pytest.approx(-z[1], rel=0.01)
    assert logged.pvalues(np.array([[10_000.0]]))[0] < 0.01
    # 3x the usual is only mildly unusual in ratio terms but extreme in raw differences
    three_x = np.array([[3000.0]])
    assert logged.pvalues(three_x)[0] > raw.pvalues(three_x)[0]
    assert logged.pvalues(np.array([[-5.0]]))[0] > 0.99  # negatives clipped to 0: low, not high


def test_robust_zscore_is_deterministic_and_round_trips_its_state() -> None:
    rng = np.random.default_rng(3)
    X = np.abs(rng.normal(50.0, 10.0, size=(200, 4)))
    kwargs = {
        "logged": (0, 1),
        "two_sided": (3,),
        "min_scale": (0.35, 0.35, 0.0, 0.0),
        "prior_center": (3.0, 3.0, 40.0, 40.0),
        "prior_scale": (1.0, 1.0, 5.0, 5.0),
        "prior_strength": 10.0,
        "dof": 10.0,
    }
    a = RobustZScore(**kwargs).fit(X)  # type: ignore[arg-type]
    b = RobustZScore(**kwargs).fit(X)  # type: ignore[arg-type]
    probe = np.abs(rng.normal(50.0, 30.0, size=(50, 4)))
    np.testing.assert_array_equal(a.score_samples(probe), b.score_samples(probe))
    state = a.to_state()
    back = RobustZScore.from_state(state)
    np.testing.assert_array_equal(back.pvalues(probe), a.pvalues(probe))
    assert back.to_state()["params"] == state["params"]
    assert back.n_windows_ == 200.0


def test_robust_zscore_sample_weight_counts_windows_repeatedly() -> None:
    X = np.array([[1.0], [2.0], [3.0], [10.0]])
    weighted = RobustZScore().fit(X, sample_weight=np.array([1.0, 1.0, 1.0, 5.0]))
    repeated = RobustZScore().fit(np.array([[1.0], [2.0], [3.0], *[[10.0]] * 5]))
    np.testing.assert_allclose(weighted.center_, repeated.center_)
    np.testing.assert_allclose(weighted.scale_, repeated.scale_)


def test_tail_calibrator_is_monotone_and_ranks_beyond_the_training_max() -> None:
    raw = np.random.default_rng(0).exponential(size=1000)
    cal = TailCalibrator.fit(raw, scale_floor=0.1)
    grid = np.linspace(-1, raw.max() + 10, 500)
    out = cal.transform(grid)
    assert np.all(np.diff(out) >= 0) and out.min() >= 0 and out.max() < 1
    top = cal.transform(np.array([raw.max()]))[0]
    assert cal.transform(np.array([raw.max() + 5]))[0] > top
    assert cal.inverse(0.9999) == pytest.approx(
        raw.max() + cal.tail_scale * np.log((1 - top) / 1e-4), rel=1e-6
    )
    assert np.mean(cal.transform(raw) >= 0.99) == pytest.approx(0.01, abs=0.005)
