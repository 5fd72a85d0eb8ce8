"""Rate detector: failure and error rates of a window as binomial evidence.

A ratio such as "4xx share 100%" means little on one request and much on fifty. For each rate
(failed logins per login, 4xx and 5xx responses per request) the entity's base rate is its own
pooled rate shrunk toward the population's by ``prior_strength`` trials; a window with ``k``
failures in ``n`` trials gets the tail probability ``P(X >= k | n, rate)``, and no evidence
(p = 1) with fewer than ``MIN_FAILURES`` (3) failures. The window's
p-value is the smallest rate p-value times the number of rates (Bonferroni); the score is
``1 - p``, in [0, 1], higher = more unusual.

Failures are not independent trials: a mistyped password comes with a retry, a broken page with
its reload, so failures cluster in windows more than a binomial allows. The population measures
that clustering per rate as an intra-window correlation ``rho`` (:func:`overdispersion`, a
moment estimate on entity-centred counts, in ``[0, RHO_MAX]``), and the tail is beta-binomial
with ``a = rate * c``, ``b = (1 - rate) * c``, ``c = 1 / rho - 1`` (binomial when ``rho`` is 0).

How many trials the population's rate is worth is measured too (:func:`prior_strengths`,
empirical Bayes): where entities' rates differ little beyond chance, an entity's few hundred
error-free requests no longer read as an error rate far below everyone's.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import betabinom, binom

RATES: dict[str, tuple[str, str]] = {
    "failed_login_rate": ("failed_logins", "logins"),
    "rate_4xx": ("status_4xx", "events"),
    "rate_5xx": ("status_5xx", "events"),
}
"""Each rate's (failures, trials) window columns."""
LABELS = {
    "failed_login_rate": ("failed logins", "logins"),
    "rate_4xx": ("4xx responses", "requests"),
    "rate_5xx": ("5xx responses", "requests"),
}
RATE_FLOOR = 0.002
MIN_FAILURES = 3
"""Failures a window needs before its rate is evidence: 2 failures in 2 requests at a 1% rate
is p 1e-4, an outcome thousands of windows produce by chance, and nothing an analyst can act on."""
RHO_MAX = 0.1
"""Cap of the intra-window correlation: failures are trials that add themselves (a failed login is
a login), which inflates the moment estimate; above this a window's failures would prove little,
and a burst of dozens of failures must stay far in the tail."""


def pooled_rates(windows: pd.DataFrame) -> dict[str, float]:
    """Σ failures / Σ trials of each rate over ``windows`` (rates without trials left out)."""
    out: dict[str, float] = {}
    for name, (k_col, n_col) in RATES.items():
        if k_col in windows and n_col in windows:
            k = np.nansum(windows[k_col].to_numpy(dtype=float))
            n = np.nansum(windows[n_col].to_numpy(dtype=float))
            if n > 0:
                out[name] = float(k / n)
    return out


def overdispersion(
    windows: pd.DataFrame, rates: Mapping[str, float], prior_strength: float = 20.0
) -> dict[str, float]:
    """Intra-window correlation ``rho`` of each rate in ``rates`` over many entities' windows.

    Each window's failures are compared with its entity's own pooled rate (shrunk toward
    ``rates`` by ``prior_strength`` trials, as :class:`RateProfile` does), so differences between
    entities do not count as clustering. Moment estimate over windows with at least two trials:
    ``rho = Σ[(k - n p)² - n p (1 - p)] / Σ[n (n - 1) p (1 - p)]``, clipped to ``[0, RHO_MAX]``.
    """
    out: dict[str, float] = {}
    for name, base, codes, k, n, k_sum, n_sum in _per_rate(windows, rates):
        p = ((k_sum + prior_strength * base) / (n_sum + prior_strength))[codes]
        use = n >= 2
        var = p * (1.0 - p)
        den = float((n * (n - 1.0) * var)[use].sum())
        if den <= 0:
            continue
        num = float((((k - n * p) ** 2) - n * var)[use].sum())
        out[name] = float(min(max(num / den, 0.0), RHO_MAX))
    return out


PRIOR_MIN = 20.0
PRIOR_MAX = 1000.0


def prior_strengths(
    windows: pd.DataFrame, rates: Mapping[str, float], rho: Mapping[str, float]
) -> dict[str, float]:
    """How many trials the population's rate is worth in an entity's rate, per rate.

    Empirical Bayes: the spread of the entities' pooled rates beyond what their trials (with
    the windows' clustering ``rho``) explain is the between-entity variance ``tau²`` of a Beta
    prior; its concentration ``p (1 - p) / tau² - 1`` is the strength, in
    ``[PRIOR_MIN, PRIOR_MAX]`` (alike entities: ``PRIOR_MAX``)."""
    out: dict[str, float] = {}
    for name, p, _, _, n, k_sum, n_sum in _per_rate(windows, rates):
        use = n_sum > 0
        k_sum, n_sum = k_sum[use], n_sum[use]
        total = float(n_sum.sum())
        if len(n_sum) < 2 or total <= 0 or not 0.0 < p < 1.0:
            continue
        trials = n[n > 0]
        design = 1.0 + (float((trials**2).sum()) / float(trials.sum()) - 1.0) * rho.get(name, 0.0)
        spread = float((n_sum * (k_sum / n_sum - p) ** 2).sum())
        noise = (len(n_sum) - 1) * p * (1.0 - p) * design
        tau2 = (spread - noise) / (total - float((n_sum**2).sum()) / total)
        m = p * (1.0 - p) / tau2 - 1.0 if tau2 > 0 else PRIOR_MAX
        out[name] = float(min(max(m, PRIOR_MIN), PRIOR_MAX))
    return out


Counts = tuple[str, float, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _per_rate(windows: pd.DataFrame, rates: Mapping[str, float]) -> Iterator[Counts]:
    """For each known rate with windows: (name, population rate, each window's entity code,
    failures and trials per window, failures and trials per entity)."""
    codes = _entity_codes(windows)
    for name, base in rates.items():
        if name not in RATES:
            continue
        k, n = _counts(windows, name)
        if len(k):
            yield (
                name,
                base,
                codes,
                k,
                n,
                np.bincount(codes, weights=k),
                np.bincount(codes, weights=n),
            )


def _entity_codes(windows: pd.DataFrame) -> np.ndarray:
    """Each window's entity as a small integer (0 for all without an ``entity`` column)."""
    if not len(windows):
        return np.zeros(0, dtype=np.int64)
    if "entity" not in windows:
        return np.zeros(len(windows), dtype=np.int64)
    return np.asarray(pd.factorize(windows["entity"].astype(str).to_numpy())[0])


def _counts(windows: pd.DataFrame, name: str) -> tuple[np.ndarray, np.ndarray]:
    k_col, n_col = RATES[name]
    k = np.nan_to_num(windows[k_col].to_numpy(dtype=float)) if k_col in windows else None
    n = np.nan_to_num(windows[n_col].to_numpy(dtype=float)) if n_col in windows else None
    if k is None or n is None:
        return np.zeros(len(windows)), np.zeros(len(windows))
    return k, np.maximum(n, k)


@dataclass
class RateProfile:
    """Base failure rates of one entity (plain data)."""

    prior_strength: float = 20.0
    rates: dict[str, float] = field(default_factory=dict)
    trials: dict[str, float] = field(default_factory=dict)
    rho: dict[str, float] = field(default_factory=dict)

    def fit(
        self,
        windows: pd.DataFrame,
        *,
        prior: Mapping[str, float],
        weight: np.ndarray | None = None,
        rho: Mapping[str, float] | None = None,
        strength: Mapping[str, float] | None = None,
    ) -> RateProfile:
        """Learn each rate from ``windows`` shrunk toward ``prior``; return ``self``. ``rho``:
        the population's intra-window correlation per rate (:func:`overdispersion`)."""
        w = np.ones(len(windows)) if weight is None else np.asarray(weight, dtype=float)
        for name in RATES:
            k, n = _counts(windows, name)
            trials = float((n * w).sum())
            if name not in prior and trials == 0:
                continue
            base = prior.get(name, float((k * w).sum()) / max(trials, 1.0))
            m = (strength or {}).get(name, self.prior_strength)
            rate = (float((k * w).sum()) + m * base) / (trials + m)
            self.rates[name] = float(min(max(rate, RATE_FLOOR), 0.999))
            self.trials[name] = trials
            if rho and rho.get(name, 0.0) > 0:
                self.rho[name] = float(min(rho[name], RHO_MAX))
        return self

    def feature_pvalues(self, windows: pd.DataFrame) -> dict[str, np.ndarray]:
        """Tail probability of each rate per window (1 without trials): beta-binomial where the
        rate has an intra-window correlation, binomial otherwise."""
        out: dict[str, np.ndarray] = {}
        for name, rate in self.rates.items():
            k, n = _counts(windows, name)
            rho = self.rho.get(name, 0.0)
            if rho > 0:
                c = 1.0 / rho - 1.0
                tail = betabinom.sf(k - 1, n, rate * c, (1.0 - rate) * c)
            else:
                tail = binom.sf(k - 1, n, rate)
            p = np.where(k >= MIN_FAILURES, tail, 1.0)
            out[name] = np.asarray(np.clip(p, 0.0, 1.0), dtype=float)
        return out

    def pvalues(self, windows: pd.DataFrame) -> np.ndarray:
        """Smallest rate p-value × number of rates, per window."""
        per = self.feature_pvalues(windows)
        if not per:
            return np.ones(len(windows))
        return np.minimum(np.vstack(list(per.values())).min(axis=0) * len(per), 1.0)

    def to_state(self) -> dict[str, Any]:
        """Plain data."""
        return {
            "prior_strength": self.prior_strength,
            "rates": self.rates,
            "trials": self.trials,
            "rho": self.rho,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> RateProfile:
        """Rebuild from :meth:`to_state` output (a state without ``rho``, stored before it
        existed, is binomial)."""
        return cls(
            prior_strength=float(state["prior_strength"]),
            rates={str(k): float(v) for k, v in state["rates"].items()},
            trials={str(k): float(v) for k, v in state["trials"].items()},
            rho={str(k): float(v) for k, v in (state.get("rho") or {}).items()},
        )


def rate_reason(name: str, k: float, n: float, rate: float, p: float, noun: str) -> dict[str, Any]:
    """A rate reason in words: "12 failed logins of 14 logins; usual for this user 2%"."""
    what, per = LABELS[name]
    text = (
        f"{int(k)} {what} of {int(n)} {per} in the window ({k / max(n, 1):.0%}); "
        f"usual for this {noun} {rate:.1%}"
    )
    return {"feature": name, "value": k / max(n, 1), "expected": rate, "text": text, "p": p}
