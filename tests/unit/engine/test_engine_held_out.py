"""The window alert level measured out of sample on the population's own data."""

from __future__ import annotations

import numpy as np
import pytest

from tests.unit.engine._synth import history
from workers.engine.config import EngineConfig
from workers.engine.held_out import MAX_FACTOR, alert_level, held_out_pvalues, measure
from workers.engine.model import fit_entity_model
from workers.engine.population import Population, build_population

pytestmark = pytest.mark.unit
TARGET = 0.002


def test_the_level_is_the_largest_that_keeps_held_out_alerts_at_the_target() -> None:
    rng = np.random.default_rng(0)
    conservative = rng.uniform(0.004, 1.0, 5000)  # nothing below 0.004: p-values too large
    level = alert_level(conservative, TARGET)
    assert 0.004 <= level <= MAX_FACTOR * TARGET
    assert np.mean(conservative <= level) <= TARGET
    calibrated = rng.uniform(0.0, 1.0, 5000)  # already exact: the level stays about the target
    level = alert_level(calibrated, TARGET)
    assert np.mean(calibrated <= level) <= TARGET and level < 2 * TARGET
    liberal = rng.uniform(0.0, 0.01, 5000)  # too many small p-values: never below the target
    assert alert_level(liberal, TARGET) == TARGET
    assert alert_level(np.full(100, 0.5), TARGET) == TARGET  # too few to measure anything
    assert alert_level(np.ones(5000), TARGET) == MAX_FACTOR * TARGET


def test_held_out_windows_are_scored_by_a_model_of_the_earlier_events() -> None:
    events = [e for k in range(5) for e in history(f"user{k}", days=20, seed=k)]
    config = EngineConfig()
    population = build_population(events, config=config)
    pvalues, entities = held_out_pvalues(events, population, entity_field="user_id", config=config)
    assert entities == 5
    mine = [e for e in events if e["user_id"] == "user0"]
    model = fit_entity_model("user0", mine, population=population, config=config)
    all_windows = len(model.score(mine).windows)
    assert 0 < len(pvalues) < 5 * all_windows  # only the later share of each entity's windows
    assert ((pvalues >= 0) & (pvalues <= 1)).all()
    measured = measure(events, population, entity_field="user_id", config=config)
    assert TARGET <= measured.level <= MAX_FACTOR * TARGET
    assert measured.rate_at(measured.level) <= max(TARGET, 1 / len(pvalues))


def test_a_model_uses_the_measured_level_for_windows_only() -> None:
    events = history("alice", days=20, seed=1)
    population = build_population(events)
    raised = Population.from_json({**population.to_json(), "window_level_factor": 3.0})
    model = fit_entity_model("alice", events, population=raised)
    assert model.thresholds["combined"] == pytest.approx(1 - 3.0 * TARGET)
    assert model.thresholds["novelty"] == pytest.approx(1 - TARGET)
    plain = fit_entity_model("alice", events, population=population)
    assert plain.thresholds["combined"] == pytest.approx(1 - TARGET)
