"""The issue's quality bar on the default demo scenario (seeded; quality floors, not timings).

Production-like split: per entity, train on the first 70% of its span, score the rest. The
combined detector (window detectors + novelty on single logins) must reach incident recall
>= 0.95 with alert precision >= 0.80.
"""

from __future__ import annotations

from collections import defaultdict

import pandas as pd
import pytest

from workers.engine.config import EngineConfig
from workers.engine.demo_data import generate_demo
from workers.engine.evaluation import evaluate_scores, load_labels, split_train_test
from workers.engine.model import fit_entity_model
from workers.engine.population import build_population

pytestmark = pytest.mark.unit


def test_default_demo_scenario_meets_the_quality_bar() -> None:
    scenario = generate_demo()
    labels = load_labels(scenario.labels)
    train, test = split_train_test(scenario.events, "user_id")
    config = EngineConfig()
    population = build_population(train, config=config)
    by_train: dict[str, list[dict]] = defaultdict(list)
    by_test: dict[str, list[dict]] = defaultdict(list)
    for event in train:
        by_train[event["user_id"]].append(event)
    for event in test:
        by_test[event["user_id"]].append(event)
    rows = []
    for entity, events in sorted(by_train.items()):
        model = fit_entity_model(entity, events, config=config, population=population)
        rows.append(model.score(by_test[entity]).combined().assign(entity=entity))
    report = evaluate_scores(pd.concat(rows, ignore_index=True), labels)
    assert report.n_incidents >= 10
    assert report.incident_recall >= 0.95, report.missed
    assert report.alert_precision >= 0.80
    assert report.roc_auc >= 0.9
