"""Working-hour cohorts: a mixture fitted to the entities' hours, the prior of a sparse one."""

from __future__ import annotations

import numpy as np
import pytest

from tests.unit.engine._synth import history
from workers.engine.detectors.time_cohorts import MIN_COHORT_HOURS, cohort_prior, fit_cohorts
from workers.engine.population import Population, build_population, time_prior_of

pytestmark = pytest.mark.unit


def _hours(rng: np.random.Generator, centre: int, n: int, weekend: float = 0.0) -> np.ndarray:
    counts = np.zeros((2, 24))
    for _ in range(n):
        day = int(rng.random() < weekend)
        counts[day, int(centre + rng.integers(-3, 4)) % 24] += 1
    return counts


def _population(rng: np.random.Generator) -> np.ndarray:
    day = [_hours(rng, 12, int(rng.integers(40, 90))) for _ in range(30)]
    night = [_hours(rng, 2, int(rng.integers(40, 90))) for _ in range(12)]
    return np.stack(day + night)


def test_day_and_night_workers_are_two_cohorts() -> None:
    profiles, weights = fit_cohorts(_population(np.random.default_rng(0)))
    assert len(profiles) == 2
    peaks = sorted(int(np.argmax(p.sum(axis=0))) for p in profiles)
    assert peaks[0] in range(0, 5) and peaks[1] in range(10, 15)
    assert sorted(np.round(weights, 2)) == pytest.approx([12 / 42, 30 / 42], abs=0.02)
    np.testing.assert_allclose(profiles.sum(axis=(1, 2)), 1.0)


def test_one_kind_of_worker_is_one_cohort_and_no_history_is_none() -> None:
    rng = np.random.default_rng(1)
    profiles, _ = fit_cohorts(np.stack([_hours(rng, 10, 60) for _ in range(25)]))
    assert len(profiles) == 1
    few = np.stack([_hours(rng, 10, MIN_COHORT_HOURS - 1) for _ in range(5)])
    assert fit_cohorts(few)[0].shape == (0, 2, 24)


def test_a_sparse_day_worker_gets_the_day_cohort_as_its_prior() -> None:
    counts = _population(np.random.default_rng(2))
    profiles, weights = fit_cohorts(counts)
    pooled = time_prior_of(counts)
    newcomer = np.zeros((2, 24))
    newcomer[0, [11, 13, 14]] = 1  # three office hours
    prior = cohort_prior(newcomer, profiles, weights)
    night = slice(0, 5)
    assert prior[:, night].sum() < 0.2 * pooled[:, night].sum()  # its 03:00 is rarer
    sleeper = np.zeros((2, 24))
    sleeper[0, [1, 2, 3]] = 1
    assert cohort_prior(sleeper, profiles, weights)[:, night].sum() > 0.5
    mixture = cohort_prior(np.zeros((2, 24)), profiles, weights)  # nothing known: the mix
    np.testing.assert_allclose(mixture, np.einsum("k,kdh->dh", weights, profiles), atol=1e-9)


def test_population_keeps_its_cohorts_through_json() -> None:
    events = [e for k in range(6) for e in history(f"user{k}", days=14, seed=k)]
    population = build_population(events)
    assert population.time_cohorts
    back = Population.from_json(population.to_json())
    assert back.time_cohorts == population.time_cohorts
    some = np.zeros((2, 24))
    some[0, 10] = 3
    np.testing.assert_allclose(back.time_prior_for(some), population.time_prior_for(some))
    share = np.asarray(population.time_prior).sum(axis=1)
    np.testing.assert_allclose(population.time_prior_for(some).sum(axis=1), share)
