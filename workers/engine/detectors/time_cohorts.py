"""Cohorts of working hours: the prior a sparse entity's time-of-day model shrinks toward.

A user seen on eight days tells little about their hours on their own, and the population's
hours mix day workers, night shifts and weekend staff: against that mix, a day worker's
03:00 session is only as rare as the population's night work. The entities' active hours
(2 day types × 24 local hours, :mod:`.time_of_day`) are fitted here as a **mixture of
multinomials** by EM; the number of cohorts is chosen by BIC, so a population of day workers
gets one cohort and a mixed one several. An entity's prior is then the mixture of the cohort
profiles weighted by the posterior of its own hours: a few office hours put it in the office
cohort, whose night share is small; an entity with no hours keeps the population mixture.

Pure functions on arrays; deterministic (initialized from each entity's peak hour).
"""

from __future__ import annotations

import numpy as np

from .time_of_day import SMOOTHING

MAX_COHORTS = 6
MIN_COHORT_HOURS = 5
"""Entities with fewer active hours do not take part in the fit (they say little)."""
PROFILE_FLOOR = 0.02
"""Share of each cohort profile spread uniformly: no cell of a cohort is impossible."""
EM_ITERATIONS = 60


def _normalized(profiles: np.ndarray) -> np.ndarray:
    smooth = profiles @ SMOOTHING.T  # (K, 2, 24): spread each hour over its neighbours
    flat = smooth.reshape(len(profiles), -1)
    flat = flat / np.maximum(flat.sum(axis=1, keepdims=True), 1e-12)
    flat = (1.0 - PROFILE_FLOOR) * flat + PROFILE_FLOOR / flat.shape[1]
    return np.asarray(flat.reshape(profiles.shape))


def _log_likelihood(counts: np.ndarray, profiles: np.ndarray) -> np.ndarray:
    """(E, K) multinomial log likelihood (without the coefficient) of each entity's hours."""
    logs = np.log(profiles.reshape(len(profiles), -1))
    return np.asarray(counts.reshape(len(counts), -1) @ logs.T)


def _posterior(log_lik: np.ndarray, weights: np.ndarray) -> np.ndarray:
    joint = log_lik + np.log(np.maximum(weights, 1e-300))[None, :]
    joint -= joint.max(axis=1, keepdims=True)
    post = np.exp(joint)
    return np.asarray(post / post.sum(axis=1, keepdims=True))


def _fit_k(counts: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, float]:
    """EM for ``k`` cohorts; returns (profiles K×2×24, weights K, log likelihood)."""
    peak = np.argmax(counts.sum(axis=1) @ SMOOTHING.T, axis=1)  # each entity's busiest hour
    order = np.argsort(peak, kind="stable")
    resp = np.zeros((len(counts), k))
    for j, part in enumerate(np.array_split(order, k)):
        resp[part, j] = 1.0
    profiles = np.zeros((k, 2, 24))
    weights = np.full(k, 1.0 / k)
    log_lik = np.zeros((len(counts), k))
    for _ in range(EM_ITERATIONS):
        profiles = _normalized(np.einsum("ek,edh->kdh", resp, counts) + 1e-9)
        weights = np.maximum(resp.mean(axis=0), 1e-9)
        log_lik = _log_likelihood(counts, profiles)
        new = _posterior(log_lik, weights)
        if np.allclose(new, resp, atol=1e-6):
            break
        resp = new
    joint = log_lik + np.log(weights)[None, :]
    top = joint.max(axis=1, keepdims=True)
    total = float((top[:, 0] + np.log(np.exp(joint - top).sum(axis=1))).sum())
    return profiles, weights, total


def fit_cohorts(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cohort profiles (K × 2 × 24, each summing to 1) and weights (K) from per-entity
    active-hour counts (E × 2 × 24); K in 1..``MAX_COHORTS`` by BIC. No usable entity: K = 0."""
    counts = np.asarray(counts, dtype=float).reshape(-1, 2, 24)
    counts = counts[counts.sum(axis=(1, 2)) >= MIN_COHORT_HOURS]
    if not len(counts):
        return np.zeros((0, 2, 24)), np.zeros(0)
    best: tuple[float, np.ndarray, np.ndarray] | None = None
    n_obs = float(len(counts))
    for k in range(1, min(MAX_COHORTS, len(counts)) + 1):
        profiles, weights, log_lik = _fit_k(counts, k)
        bic = -2.0 * log_lik + (k * 47 + k - 1) * np.log(n_obs)
        if best is None or bic < best[0]:
            best = (bic, profiles, weights)
    assert best is not None
    return best[1], best[2]


def cohort_prior(counts: np.ndarray, profiles: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The 2 × 24 prior of an entity with active-hour ``counts``: the cohort profiles weighted
    by the posterior of those hours (the cohorts' mixture when it has none)."""
    profiles = np.asarray(profiles, dtype=float).reshape(-1, 2, 24)
    weights = np.asarray(weights, dtype=float)
    own = np.asarray(counts, dtype=float).reshape(1, 2, 24)
    post = _posterior(_log_likelihood(own, profiles), weights)[0]
    prior = np.einsum("k,kdh->dh", post, profiles)
    return np.asarray(prior / prior.sum())
