"""Rates: failures per trial as binomial (or, where failures cluster, beta-binomial) evidence,
shrunk toward the population's rate."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from scipy.stats import betabinom, binom

from workers.engine.config import EngineConfig
from workers.engine.detectors.rates import (
    MIN_FAILURES,
    PRIOR_MAX,
    PRIOR_MIN,
    RATE_FLOOR,
    RATES,
    RHO_MAX,
    RateProfile,
    overdispersion,
    pooled_rates,
    prior_strengths,
)
from workers.engine.features import events_frame, window_table
from workers.engine.model import fit_entity_model
from workers.engine.population import Population, build_population
from workers.store.anomalies import documents

from ._synth import START, history, login

pytestmark = pytest.mark.unit

PRIOR = {"failed_login_rate": 0.05, "rate_4xx": 0.02, "rate_5xx": 0.01}


def _windows(failed: list[int], logins: list[int]) -> pd.DataFrame:
    n = len(failed)
    return pd.DataFrame(
        {
            "failed_logins": np.array(failed, float),
            "logins": np.array(logins, float),
            "status_4xx": np.zeros(n),
            "status_5xx": np.zeros(n),
            "events": np.array(logins, float),
        }
    )


def test_one_failure_of_one_is_weak_and_twenty_of_twenty_five_is_strong() -> None:
    profile = RateProfile().fit(_windows([0] * 50, [2] * 50), prior=PRIOR)
    p_one, p_many = profile.pvalues(_windows([1, 20], [1, 25]))
    assert p_one > 0.002 * 10  # far from any alert
    assert p_many < 1e-12
    rate = profile.rates["failed_login_rate"]
    per = profile.feature_pvalues(_windows([20], [25]))["failed_login_rate"][0]
    assert per == pytest.approx(binom.sf(19, 25, rate))
    assert p_many == pytest.approx(min(per * len(profile.rates), 1.0))
    assert profile.pvalues(_windows([0], [40]))[0] == 1.0  # no failures: nothing to say


def test_base_rate_is_shrunk_toward_the_population() -> None:
    empty = RateProfile().fit(_windows([], []), prior=PRIOR)
    assert empty.rates["failed_login_rate"] == pytest.approx(0.05)
    sparse = RateProfile().fit(_windows([5], [5]), prior=PRIOR)
    assert sparse.rates["failed_login_rate"] == pytest.approx((5 + 20 * 0.05) / (5 + 20))
    dense = RateProfile().fit(_windows([30] * 100, [100] * 100), prior=PRIOR)
    assert dense.rates["failed_login_rate"] == pytest.approx(0.3, abs=0.001)
    # a user who often mistypes is not flagged for what alarms on a careful one
    careful = RateProfile().fit(_windows([0] * 100, [2] * 100), prior=PRIOR)
    probe = _windows([3], [5])
    assert dense.pvalues(probe)[0] > 0.1 > careful.pvalues(probe)[0]
    assert careful.rates["failed_login_rate"] >= RATE_FLOOR


def test_dismissed_weight_and_state_round_trip() -> None:
    w = _windows([0, 10], [10, 10])
    weighted = RateProfile().fit(w, prior=PRIOR, weight=np.array([1.0, 10.0]))
    plain = RateProfile().fit(w, prior=PRIOR)
    assert weighted.rates["failed_login_rate"] > plain.rates["failed_login_rate"]
    assert weighted.trials["failed_login_rate"] == 110
    back = RateProfile.from_state(weighted.to_state())
    assert back == weighted
    probe = _windows([4, 1], [6, 1])
    np.testing.assert_array_equal(back.pvalues(probe), weighted.pvalues(probe))
    assert pooled_rates(w) == {"failed_login_rate": 0.5, "rate_4xx": 0.0, "rate_5xx": 0.0}
    assert set(RATES) == {"failed_login_rate", "rate_4xx", "rate_5xx"}


def test_entity_model_flags_credential_stuffing_not_one_typo() -> None:
    model = fit_entity_model("alice", history("alice", days=30, seed=1))
    at = START + timedelta(days=31, hours=16)
    typo = [login("alice", at, 1, status=401)]
    stuffing = [
        login(
            "alice", at + timedelta(days=1, seconds=20 * i), 100 + i, status=401 if i < 20 else 200
        )
        for i in range(25)
    ]
    assert not model.score(typo).windows["flagged"].any()
    result = model.score(stuffing)
    assert result.windows["flagged"].any()
    doc = next(
        d
        for d in documents(result.findings(model_id="m", model_version=1))
        if d["detector"] != "novelty"
    )
    rate = next(r for r in doc["reasons"] if r["feature"] == "failed_login_rate")
    assert rate["text"].startswith("20 failed logins of 25 logins in the window (80%);")
    assert "usual for this user" in rate["text"] and rate["p"] < 1e-6


def _requests(k: list[int], n: list[int], entity: list[str] | None = None) -> pd.DataFrame:
    frame = pd.DataFrame(
        {"status_5xx": np.array(k, float), "events": np.array(n, float), "status_4xx": 0.0}
    )
    return frame.assign(entity=entity) if entity is not None else frame


def test_overdispersion_sees_clustered_failures_not_independent_ones() -> None:
    rng = np.random.default_rng(3)
    n = rng.integers(2, 30, 4000)
    independent = _requests(list(rng.binomial(n, 0.02)), list(n))
    # the same 2% on average, but failing in bursts: a window is fine or has a 20% error rate
    burst = rng.random(4000) < 0.1
    clustered = _requests(list(rng.binomial(n, np.where(burst, 0.2, 0.0))), list(n))
    assert overdispersion(independent, {"rate_5xx": 0.02})["rate_5xx"] < 0.01
    rho = overdispersion(clustered, {"rate_5xx": 0.02})["rate_5xx"]
    assert 0.05 < rho <= RHO_MAX
    # entities with different (steady) rates are not clustering: each is centred on its own
    rate = np.where(np.arange(4000) % 2 == 0, 0.002, 0.08)
    mixed = _requests(list(rng.binomial(n, rate)), list(n), [f"e{i % 2}" for i in range(4000)])
    assert overdispersion(mixed, {"rate_5xx": 0.04})["rate_5xx"] < 0.01
    assert overdispersion(_requests([], []), {"rate_5xx": 0.02}) == {}


def test_clustered_rate_is_beta_binomial_and_bursts_stay_strong() -> None:
    prior = {"rate_5xx": 0.01}
    windows = _requests([0] * 50, [10] * 50)
    plain = RateProfile().fit(windows, prior=prior)
    clustered = RateProfile().fit(windows, prior=prior, rho={"rate_5xx": 0.05})
    assert clustered.rates == plain.rates and clustered.rho == {"rate_5xx": 0.05}
    rate, c = clustered.rates["rate_5xx"], 1 / 0.05 - 1
    probe = _requests([3, 20, 30], [5, 25, 30])
    per = clustered.feature_pvalues(probe)["rate_5xx"]
    np.testing.assert_allclose(
        per, betabinom.sf([2, 19, 29], [5, 25, 30], rate * c, (1 - rate) * c)
    )
    few_plain, few = plain.feature_pvalues(probe)["rate_5xx"][0], per[0]
    assert few > 3 * few_plain  # three errors of five: common where errors come together
    assert per[1] < 1e-8 and per[2] < 1e-8  # a storm is still far in the tail
    capped = RateProfile().fit(windows, prior=prior, rho={"rate_5xx": 0.9})
    assert capped.rho["rate_5xx"] == RHO_MAX
    back = RateProfile.from_state(clustered.to_state())
    assert back == clustered
    # a profile stored before rho existed loads as binomial
    old = {k: v for k, v in plain.to_state().items() if k != "rho"}
    assert RateProfile.from_state(old) == plain


def test_population_keeps_rate_clustering_and_old_documents_load() -> None:
    events = [e for k in range(6) for e in history(f"user{k}", days=14, seed=k)]
    population = build_population(events)
    assert set(population.rate_rho) <= set(population.rates)
    assert all(0.0 <= v <= RHO_MAX for v in population.rate_rho.values())
    back = Population.from_json(population.to_json())
    assert back == population
    assert all(PRIOR_MIN <= v <= PRIOR_MAX for v in population.rate_strength.values())
    old = {k: v for k, v in population.to_json().items() if k not in ("rate_rho", "rate_strength")}
    stored_before = Population.from_json(old)
    assert stored_before.rate_rho == {} and stored_before.rate_strength == {}
    mine = [e for e in events if e["user_id"] == "user0"]
    model = fit_entity_model("user0", mine, population=stored_before)
    assert model.rates is not None and model.rates.rho == {}
    windows = window_table(events_frame(mine), EngineConfig().window, event_ids=False)
    default = RateProfile().fit(windows, prior=stored_before.rates)
    assert model.rates.rates == pytest.approx(default.rates)  # 20 trials, as before


def test_prior_strength_follows_how_alike_the_entities_are() -> None:
    rng = np.random.default_rng(5)
    entities = [f"e{i}" for i in range(40) for _ in range(50)]
    n = rng.integers(1, 12, len(entities))
    alike = _requests(list(rng.binomial(n, 0.01)), list(n), entities)
    own = np.repeat(rng.beta(0.5, 20.0, 40), 50)  # each entity its own rate, mean ~2.4%
    unlike = _requests(list(rng.binomial(n, own)), list(n), entities)
    base = {"rate_5xx": 0.01}
    assert prior_strengths(alike, base, {}) == {"rate_5xx": PRIOR_MAX}
    spread = prior_strengths(unlike, pooled_rates(unlike), {})["rate_5xx"]
    assert PRIOR_MIN <= spread < 60  # Beta(0.5, 20): concentration 20.5
    # a user without errors in a few hundred requests is not read as error-free
    quiet = RateProfile().fit(
        _requests([0] * 30, [10] * 30), prior=base, strength={"rate_5xx": PRIOR_MAX}
    )
    assert quiet.rates["rate_5xx"] == pytest.approx(10 / 1300)


def test_fewer_than_three_failures_are_no_rate_evidence() -> None:
    profile = RateProfile().fit(_requests([0] * 50, [10] * 50), prior={"rate_5xx": 0.01})
    probe = _requests([1, 2, 2, MIN_FAILURES], [1, 2, 50, MIN_FAILURES])
    per = profile.feature_pvalues(probe)["rate_5xx"]
    assert per[:3].tolist() == [1.0, 1.0, 1.0]  # 2 of 2 at a 1% rate: chance, not an alert
    rate = profile.rates["rate_5xx"]
    assert per[3] == pytest.approx(binom.sf(MIN_FAILURES - 1, MIN_FAILURES, rate))
    assert per[3] < 1e-4
