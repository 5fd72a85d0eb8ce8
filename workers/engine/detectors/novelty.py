"""Novelty of a login's context for one entity, as independent facts with tail probabilities.

Context fields fall in three groups of facts: **place** (country, region, city), **network**
(ASN, IP /24 or /64) and **device** (browser, OS, device family, OS major version), plus
**travel** (a change of country faster than anyone travels). For each field the entity's
predictive distribution is a Chinese-restaurant process: a value seen ``c`` times of ``n`` has
probability ``c / D`` and a value never seen ``(alpha + beta·K) / D`` in all, with ``K``
distinct values so far and
``D = n + alpha + beta·K``: an entity that has used 6 countries will meet a 7th far sooner than
one that has used 1. A field's p-value is the mass of the values no more likely than the one
observed; for a never-seen value that is the new-value mass times the population's share of
values no more common than it (a popular phone costs less than a rare country).

A field's p-value is raised to its weight (a new city alone is a weak fact), a group's p-value is
its strongest field's, and the login's p-value is the product over groups: changes in place,
network and device at once multiply. ``facts`` counts the groups with p <= ``FACT_P``: one new
phone at home is one fact, a takeover from abroad on a new browser is three, and a login with
no fact (a frequent traveller in yet another country) is never flagged. A new place and
network on a familiar device, without an impossible trip, is what travel looks like: its p is
``TRIP_DISCOUNT`` (10) times larger. Scores are
``1 - p``, in [0, 1], higher = more unusual. (Facts are counted on each group's unweighted
p-value without the population factor: a weight says how much a field adds to the score, and
the population how rare the value is, not whether this entity's context changed.)

:meth:`NoveltyProfile.score_sequence` scores logins in time order and **adds each to the
profile after scoring it**, so a new device alerts once: its second login is a value seen once.

Travel is a change of country within ``TRAVEL_WINDOW_S`` of the last login, except a return
(``A -> B -> A``) after a move to ``B`` already judged: a fast change itself, or a login that was
an alert (``alert_p``). The victim logging in at home after a takeover login abroad is not a
second alert.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

MAX_VALUES_PER_FIELD = 200
FACT_P = 0.05
TRAVEL_WINDOW_S = 2 * 3600.0
TRIP_FACTS = frozenset({"place", "network"})
TRIP_DISCOUNT = 10.0
TRAVEL_PRIOR = 0.02
GROUPS: dict[str, tuple[str, ...]] = {
    "place": ("country", "region", "city"),
    "network": ("asn", "ip_prefix"),
    "device": ("browser", "os", "device", "os_version"),
}
FIELD_GROUP = {f: g for g, fields in GROUPS.items() for f in fields}


@dataclass(frozen=True)
class FieldPrior:
    """Population frequencies of one context field: ``top`` values and one ``unseen`` rate."""

    top: dict[str, float]
    unseen: float

    def tail(self, value: str, exclude: Mapping[str, float]) -> float:
        """Population share of values no more common than ``value``, among values not in
        ``exclude`` (the entity's own); values outside ``top`` are lumped together."""
        other = max(1.0 - sum(self.top.values()), 0.0)
        own = self.top.get(value)
        if own is None:
            below = other
        else:
            below = other + sum(p for v, p in self.top.items() if p <= own and v not in exclude)
        known = sum(p for v, p in self.top.items() if v in exclude)
        return float(min(below / max(1.0 - known, 1e-9), 1.0))

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
    p: float  # the field's p-value after its weight; smaller = more unusual
    raw_p: float = 1.0  # before weight and population: how likely any value this rare was

    @property
    def nats(self) -> float:
        """``-log p``: evidence in nats, higher = more unusual."""
        return -math.log(max(self.p, 1e-300))


@dataclass(frozen=True)
class LoginNovelty:
    """The novelty of one login: p-value, independent facts changed and their surprises."""

    p: float
    facts: tuple[str, ...]
    surprises: tuple[FieldSurprise, ...]
    travel: dict[str, Any] | None = None


@dataclass
class NoveltyProfile:
    """Categorical login-context profile of one entity (plain data, updated as it scores).

    Parameters:
        weights: exponent of each field's p-value (fields absent here are ignored).
        alpha / beta: new-value mass ``alpha + beta·K`` of the predictive distribution.
    """

    weights: dict[str, float]
    alpha: float = 1.0
    beta: float = 1.0
    priors: dict[str, FieldPrior] = field(default_factory=dict)
    counts: dict[str, dict[str, float]] = field(default_factory=dict)
    n_logins: float = 0.0
    last: dict[str, str] = field(default_factory=dict)
    steps: dict[str, float] = field(default_factory=dict)
    changes: dict[str, float] = field(default_factory=dict)
    new_changes: dict[str, float] = field(default_factory=dict)
    fast_switches: float = 0.0
    switch_chances: float = 0.0
    last_country: str | None = None
    last_time_s: float | None = None
    trip_from: str | None = None

    def fit(
        self,
        context: pd.DataFrame,
        *,
        priors: Mapping[str, FieldPrior],
        sample_weight: np.ndarray | None = None,
    ) -> NoveltyProfile:
        """Count the entity's login context values (``sample_weight`` per login); return self."""
        self.priors = {f: priors.get(f, UNIFORM_PRIOR) for f in self.weights}
        self.counts = {f: {} for f in self.weights}
        self.last, self.steps, self.changes, self.new_changes = {}, {}, {}, {}
        self.n_logins, self.fast_switches, self.switch_chances = 0.0, 0.0, 0.0
        self.last_country, self.last_time_s, self.trip_from = None, None, None
        w = np.ones(len(context)) if sample_weight is None else np.asarray(sample_weight, float)
        for row, weight in zip(_rows(context), w.tolist(), strict=True):
            self.observe(row, weight)
        for f, counts in self.counts.items():
            top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_VALUES_PER_FIELD]
            self.counts[f] = dict(top)
        return self

    def observe(
        self, row: Mapping[str, Any], weight: float = 1.0, *, alerted: bool = False
    ) -> None:
        """Add one login to the profile (after it was scored; ``alerted``: it was an alert)."""
        self.n_logins += weight
        country, t = row.get("country"), _seconds(row.get("timestamp"))
        for f in self.weights:
            value = row.get(f)
            if isinstance(value, str):
                counts = self.counts.setdefault(f, {})
                before = self.last.get(f)
                if before is not None:
                    self.steps[f] = self.steps.get(f, 0.0) + 1.0
                    if value != before:
                        self.changes[f] = self.changes.get(f, 0.0) + 1.0
                        if value not in counts:
                            self.new_changes[f] = self.new_changes.get(f, 0.0) + 1.0
                counts[value] = counts.get(value, 0.0) + weight
                self.last[f] = value
        if isinstance(country, str) and t is not None:
            last_t = self.last_time_s
            fast = last_t is not None and t - last_t <= TRAVEL_WINDOW_S
            if self.last_country is not None and fast:
                self.switch_chances += weight
                if country != self.last_country:
                    self.fast_switches += weight
            if self.last_country is not None and country != self.last_country:
                # a move already judged when it came: a change of country within the travel
                # window (the travel fact), or a login that was itself an alert
                self.trip_from = self.last_country if fast or alerted else None
            self.last_country, self.last_time_s = country, t

    def _field(self, f: str, value: str) -> FieldSurprise:
        counts = self.counts.get(f, {})
        n = sum(counts.values())
        c = counts.get(value, 0.0)
        before = self.last.get(f)
        if before is None or value == before:  # nothing known, or nothing changed
            p = raw = 1.0
        else:
            k = len(counts)
            new_mass = self.alpha + self.beta * k
            changes = self.changes.get(f, 0.0)
            rate = (changes + self.alpha / 2) / (self.steps.get(f, 0.0) + self.alpha)
            new_share = (self.new_changes.get(f, 0.0) + self.beta) / (changes + 2 * self.beta)
            if c > 0:  # back to a value seen before
                seen = (sum(v for v in counts.values() if v <= c) + new_mass) / (n + new_mass)
                p = raw = max(seen, rate * (1.0 - new_share / 2))
            else:  # a value never seen: rarer still when the population rarely uses it
                raw = max(new_mass / (n + new_mass), rate * new_share)
                p = raw * self.priors.get(f, UNIFORM_PRIOR).tail(value, counts)
                if k <= 1:  # the first change of a field that never changed is a new fact
                    raw = min(raw, FACT_P)
        mode = max(counts, key=lambda v: (counts[v], v)) if counts else None
        share = counts[mode] / n if mode is not None and n > 0 else 0.0
        weighted = min(p, 1.0) ** self.weights.get(f, 1.0)
        return FieldSurprise(f, value, c, n, mode, share, weighted, min(raw, 1.0))

    def _travel(self, row: Mapping[str, Any]) -> tuple[float, dict[str, Any] | None]:
        country, t = row.get("country"), _seconds(row.get("timestamp"))
        last, last_t = self.last_country, self.last_time_s
        if not isinstance(country, str) or t is None or last is None or last_t is None:
            return 1.0, None
        gap = t - last_t
        if country == last or gap > TRAVEL_WINDOW_S:
            return 1.0, None
        if country == self.trip_from:
            # back where the entity was before a move already judged (A -> B -> A): the
            # login in B was the odd one and alerted then; coming back is not a new trip
            return 1.0, None
        p = (self.fast_switches + TRAVEL_PRIOR) / (self.switch_chances + 1.0)
        detail = {
            "from": last,
            "to": country,
            "minutes": round(gap / 60.0),
            "seen": round(self.fast_switches),
            "chances": round(self.switch_chances),
        }
        return float(min(p, 1.0)), detail

    def novelty(self, row: Mapping[str, Any]) -> LoginNovelty:
        """The novelty of one login against the profile as it is now (nothing is added)."""
        surprises = [self._field(f, v) for f in self.weights if isinstance(v := row.get(f), str)]
        group_p: dict[str, float] = {}
        group_raw: dict[str, float] = {}
        for s in surprises:
            g = FIELD_GROUP.get(s.field, s.field)
            group_p[g] = min(group_p.get(g, 1.0), s.p)
            group_raw[g] = min(group_raw.get(g, 1.0), s.raw_p)
        travel_p, travel = self._travel(row)
        if travel is not None:
            group_p["travel"] = group_raw["travel"] = travel_p
        p = float(np.prod(list(group_p.values()))) if group_p else 1.0
        facts = tuple(sorted(g for g, gp in group_raw.items() if gp <= FACT_P))
        if not facts:  # nothing changed that this entity would not expect: never an alert
            p = max(p, FACT_P)
        elif set(facts) <= TRIP_FACTS:  # new place and network, familiar device: a trip
            p = min(p * TRIP_DISCOUNT, 1.0)
        return LoginNovelty(p=p, facts=facts, surprises=tuple(surprises), travel=travel)

    def score_sequence(
        self,
        context: pd.DataFrame,
        *,
        emit: Sequence[bool] | None = None,
        alert_p: float | None = None,
    ) -> list[LoginNovelty | None]:
        """Score logins in time order, adding each to the profile after scoring it.

        Rows where ``emit`` is False are only added (context before the scored range) and
        give None. Returns one :class:`LoginNovelty` (or None) per row. ``alert_p``: the p at
        or below which a login is an alert; a login that moved the entity to another country
        and alerted makes a quick return from there no travel fact (see :meth:`_travel`).
        """
        out: list[LoginNovelty | None] = []
        flags = [True] * len(context) if emit is None else list(emit)
        for row, scored in zip(_rows(context), flags, strict=True):
            moved = isinstance(c := row.get("country"), str) and c != self.last_country
            found = self.novelty(row) if scored or (moved and alert_p is not None) else None
            out.append(found if scored else None)
            alerted = alert_p is not None and found is not None and found.p <= alert_p
            self.observe(row, alerted=alerted)
        return out

    def to_state(self) -> dict[str, Any]:
        """Plain JSON data."""
        return {
            "weights": dict(self.weights),
            "alpha": self.alpha,
            "beta": self.beta,
            "priors": {f: p.to_state() for f, p in self.priors.items()},
            "counts": self.counts,
            "n_logins": self.n_logins,
            "last": self.last,
            "steps": self.steps,
            "changes": self.changes,
            "new_changes": self.new_changes,
            "fast_switches": self.fast_switches,
            "switch_chances": self.switch_chances,
            "last_country": self.last_country,
            "last_time_s": self.last_time_s,
            "trip_from": self.trip_from,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> NoveltyProfile:
        """Rebuild from :meth:`to_state` output (no code is loaded)."""
        last_t = state.get("last_time_s")
        return cls(
            weights={str(k): float(v) for k, v in state["weights"].items()},
            alpha=float(state["alpha"]),
            beta=float(state["beta"]),
            priors={f: FieldPrior.from_state(p) for f, p in state["priors"].items()},
            counts={
                f: {str(k): float(v) for k, v in c.items()} for f, c in state["counts"].items()
            },
            n_logins=float(state["n_logins"]),
            last={str(k): str(v) for k, v in state["last"].items()},
            steps={str(k): float(v) for k, v in state["steps"].items()},
            changes={str(k): float(v) for k, v in state["changes"].items()},
            new_changes={str(k): float(v) for k, v in state["new_changes"].items()},
            fast_switches=float(state["fast_switches"]),
            switch_chances=float(state["switch_chances"]),
            last_country=state.get("last_country"),
            last_time_s=None if last_t is None else float(last_t),
            trip_from=state.get("trip_from"),
        )

    def copy(self) -> NoveltyProfile:
        """An independent copy (scoring updates a copy, never the stored model)."""
        return NoveltyProfile.from_state(self.to_state())


def _rows(context: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): v for k, v in r.items()} for r in context.to_dict("records")]


def _seconds(value: Any) -> float | None:
    if value is None or value is pd.NaT:
        return None
    try:
        return float(pd.Timestamp(value).value) / 1e9
    except (TypeError, ValueError):
        return None
