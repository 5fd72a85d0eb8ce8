"""Out-of-sample calibration of the window alert level, measured on the population's own data.

A window's p-value combines several tests with Bonferroni corrections (features within the
z-score, detectors within a family, the *what* and *when* families), and the time-of-day and
rate tests are discrete: together the p-values are conservative, so ``p <= target_alert_rate``
alerts on fewer normal windows than the configured rate, and real incidents are missed at
the edge. How conservative depends on the data, so it is measured, not assumed:

each sampled entity's events are split in time (the first ``FIT_SHARE`` to fit, the rest held
out); its model is fitted on the first part exactly as training fits it (same population,
cohorts and detectors) and scores the held-out part exactly as scoring does. The held-out
windows' p-values are what the engine produces on *new* data. The alert level is then raised
to the largest level at which the held-out windows alert at no more than the target rate, at
most ``MAX_FACTOR`` times the target and never below it. With fewer held-out windows than
``1 / target`` nothing can be measured and the level stays the target. Real incidents in the
history only lower the measured level (more small p-values), never raise it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .config import EngineConfig
from .errors import InsufficientHistoryError
from .features import NAT_NS, timestamps_ns
from .model import fit_entity_model
from .population import Population

FIT_SHARE = 0.7
MAX_FACTOR = 5.0
MAX_ENTITIES = 100
"""Entities fitted for the measurement (the population's sample may hold more)."""


@dataclass(frozen=True)
class HeldOut:
    """What the measurement saw: held-out window p-values and the level they allow."""

    pvalues: np.ndarray
    entities: int
    level: float  # the alert level on the p-value, in [target, MAX_FACTOR * target]

    def rate_at(self, level: float) -> float:
        """Share of held-out windows with ``p <= level`` (NaN without windows)."""
        return float(np.mean(self.pvalues <= level)) if self.pvalues.size else float("nan")


def held_out_pvalues(
    events: Iterable[Mapping[str, Any]],
    population: Population,
    *,
    entity_field: str,
    config: EngineConfig,
    max_entities: int = MAX_ENTITIES,
) -> tuple[np.ndarray, int]:
    """Combined window p-values of each entity's later events under a model of its earlier
    ones (the first ``FIT_SHARE`` of its time span), and how many entities took part."""
    rows = list(events)
    stamps = timestamps_ns([e.get("timestamp") for e in rows])
    by_entity: dict[str, list[int]] = {}
    for i, event in enumerate(rows):
        if stamps[i] != NAT_NS:
            by_entity.setdefault(str(event.get(entity_field)), []).append(i)
    out: list[np.ndarray] = []
    used = 0
    for entity in sorted(by_entity)[:max_entities]:
        index = np.asarray(by_entity[entity])
        own = stamps[index]
        cut_ns = int(own.min() + (own.max() - own.min()) * FIT_SHARE)
        fit_part = [rows[i] for i in index[own < cut_ns]]
        if not fit_part or len(fit_part) == len(index):
            continue
        mine = [rows[i] for i in index]
        cut = pd.Timestamp(cut_ns, tz="UTC")
        try:
            model = fit_entity_model(
                entity, fit_part, entity_field=entity_field, config=config, population=population
            )
        except (InsufficientHistoryError, ValueError):  # an entity the fleet cannot train
            continue
        windows = model.score(mine, score_from=cut.isoformat()).windows
        out.append(1.0 - windows["score"].to_numpy(dtype=float))
        used += 1
    return (np.concatenate(out) if out else np.zeros(0)), used


def alert_level(pvalues: np.ndarray, target: float) -> float:
    """The largest level ``L`` in [target, ``MAX_FACTOR`` · target] at which held-out windows
    with ``p <= L`` are at most ``target`` of them; the target when too few were held out."""
    p = np.sort(np.asarray(pvalues, dtype=float))
    allowed = int(np.floor(target * p.size))  # false alerts the target rate allows
    if allowed < 1:
        return float(target)
    # any level below the (allowed + 1)-th smallest p-value alerts on at most `allowed`
    next_p = p[allowed] if allowed < p.size else np.inf
    level = np.nextafter(next_p, 0.0) if np.isfinite(next_p) else MAX_FACTOR * target
    return float(np.clip(level, target, MAX_FACTOR * target))


def measure(
    events: Iterable[Mapping[str, Any]],
    population: Population,
    *,
    entity_field: str,
    config: EngineConfig,
) -> HeldOut:
    """Held-out p-values of the population's sample and the alert level they allow."""
    pvalues, entities = held_out_pvalues(
        events, population, entity_field=entity_field, config=config
    )
    return HeldOut(pvalues, entities, alert_level(pvalues, config.target_alert_rate))
