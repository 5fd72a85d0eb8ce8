"""Novelty of a single login's context for one entity (Freeman et al., NDSS 2016 style).

For each context field f (country, region, city, IP prefix, ASN, browser, OS, device) the
entity's frequency of the observed value is smoothed with the population's::

    p_u(v) = (count_u(v) + m · p_pop(v)) / (n_u + m)

and the field's surprise is ``log(p_u(mode) / p_u(v))`` ≥ 0 (zero for the entity's usual value).
The raw score is the weighted sum of field surprises in nats; a value common in the population
(a popular phone) costs less than one nobody uses (a rare country). Raw scores are calibrated
on the entity's own logins scored leave-one-out (each training login as if it were new), so
``score_samples`` is in [0, 1], higher = more unusual, and one event is scored on arrival.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..calibration import TailCalibrator

MAX_VALUES_PER_FIELD = 100
SCALE_FLOOR_NATS = 1.0


@dataclass(frozen=True)
class FieldPrior:
    """Population frequencies of one context field: ``top`` values and one ``unseen`` rate."""

    top: dict[str, float]
    unseen: float

    def p(self, value: str) -> float:
        """Return the population probability of ``value`` (``unseen`` if not among top)."""
        return self.top.get(value, self.unseen)

    def to_state(self) -> dict[str, Any]:
        """Plain JSON data."""
        return {"top": dict(self.top), "unseen": self.unseen}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> FieldPrior:
        """Rebuild from :meth:`to_state` output."""
        return cls({str(k): float(v) for k, v in state["top"].items()}, float(state["unseen"]))


UNIFORM_PRIOR = FieldPrior({}, 0.01)


@dataclass(frozen=True)
class FieldSurprise:
    """One field's contribution to a login's novelty (for reasons)."""

    field: str
    value: str
    count: float
    total: float
    mode: str | None
    mode_share: float
    nats: float


class NoveltyProfile:
    """Categorical login-context profile of one entity.

    Parameters:
        weights: weight of each context field (fields absent here are ignored).
        prior_strength: pseudo-count ``m`` of population frequencies.
    """

    def __init__(self, *, weights: Mapping[str, float], prior_strength: float = 2.0) -> None:
        self.weights = dict(weights)
        self.prior_strength = prior_strength

    def fit(
        self,
        context: pd.DataFrame,
        *,
        priors: Mapping[str, FieldPrior],
        sample_weight: np.ndarray | None = None,
        in_sample: np.ndarray | None = None,
        min_logins: int = 10,
        fallback: TailCalibrator | None = None,
    ) -> NoveltyProfile:
        """Count the entity's login context values and calibrate; return ``self``.

        ``sample_weight`` counts a login several times (dismissed anomalies); rows flagged
        ``in_sample`` are calibrated as already known rather than leave-one-out. With fewer
        than ``min_logins`` logins, ``fallback`` (the population's calibrator) is used.
        """
        n = len(context)
        w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=float)
        self.priors_ = {f: priors.get(f, UNIFORM_PRIOR) for f in self.weights}
        self.counts_: dict[str, dict[str, float]] = {}
        self.totals_: dict[str, float] = {}
        for f in self.weights:
            values = context[f] if f in context.columns else pd.Series([None] * n)
            counts: dict[str, float] = {}
            for value, weight in zip(values, w, strict=True):
                if isinstance(value, str):
                    counts[value] = counts.get(value, 0.0) + float(weight)
            self.totals_[f] = float(sum(counts.values()))
            top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_VALUES_PER_FIELD]
            self.counts_[f] = dict(top)
        self.n_logins_ = int(n)
        if n >= min_logins or fallback is None:
            loo = np.ones(n, dtype=bool) if in_sample is None else ~np.asarray(in_sample)
            raw = self._raw(context, leave_out=np.where(loo, w, 0.0))
            self.calibrator_ = TailCalibrator.fit(
                raw, scale_floor=SCALE_FLOOR_NATS, sample_weight=w
            )
        else:
            self.calibrator_ = fallback
        return self

    def _p(self, f: str, value: str, removed: float = 0.0) -> float:
        m = self.prior_strength
        count = max(self.counts_[f].get(value, 0.0) - removed, 0.0)
        total = max(self.totals_[f] - removed, 0.0)
        return (count + m * self.priors_[f].p(value)) / (total + m)

    def _mode(self, f: str) -> tuple[str | None, float]:
        counts = self.counts_[f]
        if not counts:
            top = self.priors_[f].top
            if not top:
                return None, 0.0
            best = max(top, key=lambda k: (top[k], k))
            return best, 0.0
        best = max(counts, key=lambda k: (counts[k], k))
        return best, counts[best] / max(self.totals_[f], 1e-12)

    def surprises(self, row: Mapping[str, Any], removed: float = 0.0) -> list[FieldSurprise]:
        """Return each present field's surprise for one login row (nats, ≥ 0, unweighted)."""
        out = []
        for f in self.weights:
            value = row.get(f)
            if not isinstance(value, str):
                continue
            mode, share = self._mode(f)
            p_mode = self._p(f, mode) if mode is not None else 1.0
            nats = max(math.log(p_mode / self._p(f, value, removed)), 0.0) if mode else 0.0
            if mode == value:
                nats = 0.0
            count = max(self.counts_[f].get(value, 0.0) - removed, 0.0)
            total = max(self.totals_[f] - removed, 0.0)
            out.append(FieldSurprise(f, value, count, total, mode, share, nats))
        return out

    def _raw(self, context: pd.DataFrame, leave_out: np.ndarray | None = None) -> np.ndarray:
        """Weighted field surprises per row (the sum :meth:`surprises` gives, field by field)."""
        n = len(context)
        removed = np.zeros(n) if leave_out is None else np.asarray(leave_out, dtype=float)
        out = np.zeros(n)
        for f, weight in self.weights.items():
            if f not in context.columns:
                continue
            mode, _ = self._mode(f)
            if mode is None:
                continue
            p_mode = self._p(f, mode)
            nats: dict[tuple[str, float], float] = {}
            column = context[f].to_numpy(dtype=object)
            for i, (value, r) in enumerate(zip(column, removed.tolist(), strict=True)):
                if not isinstance(value, str) or value == mode:
                    continue
                key = (value, r)
                if key not in nats:
                    nats[key] = max(math.log(p_mode / self._p(f, value, r)), 0.0)
                out[i] += weight * nats[key]
        return out

    def raw_score_samples(self, context: pd.DataFrame) -> np.ndarray:
        """Return weighted surprise in nats per login, higher = more unusual."""
        return self._raw(context)

    def score_samples(self, context: pd.DataFrame) -> np.ndarray:
        """Return calibrated novelty in [0, 1] per login, higher = more unusual."""
        return self.calibrator_.transform(self._raw(context))

    def to_state(self) -> dict[str, Any]:
        """Plain-data state (JSON-able apart from the calibrator arrays)."""
        return {
            "params": {"weights": self.weights, "prior_strength": self.prior_strength},
            "priors": {f: p.to_state() for f, p in self.priors_.items()},
            "counts": self.counts_,
            "totals": self.totals_,
            "n_logins": self.n_logins_,
            "calibrator": self.calibrator_.to_state(),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> NoveltyProfile:
        """Rebuild from :meth:`to_state` output (no code is loaded)."""
        params = state["params"]
        prof = cls(
            weights={str(k): float(v) for k, v in params["weights"].items()},
            prior_strength=float(params["prior_strength"]),
        )
        prof.priors_ = {f: FieldPrior.from_state(p) for f, p in state["priors"].items()}
        prof.counts_ = {
            f: {str(k): float(v) for k, v in c.items()} for f, c in state["counts"].items()
        }
        prof.totals_ = {f: float(v) for f, v in state["totals"].items()}
        prof.n_logins_ = int(state["n_logins"])
        prof.calibrator_ = TailCalibrator.from_state(state["calibrator"])
        return prof
