"""Detection quality on scenarios unlike the demo, through the fleet's own code (as evaluate runs).

Three generators written apart from the engine and from each other: ``workers.engine.scenarios``
(mostly sparse users, night and weekend shifts, travellers, benign device changes, seasonal
services), ``tests.support.shapes`` and ``tests.support.workforce`` (rotating call-centre
shifts, part-timers, on-call night pages, remote contractors behind VPN exits, relocations;
written without reading the detectors). Each scenario runs for 5 seeds through
``run_through_fleet`` (planners, training, scoring on the CouchDB/Redis twins) and is counted
the way an analyst meets alerts: labeled incidents found, and distinct entity-hours with a flag,
pooled over the seeds. ``FLOORS`` hold today; ``ISSUE_BAR`` is the bar of issue 12 (incident
recall >= 0.95, entity-hour precision >= 0.80), strict-xfailed where the engine is not there yet,
with the measured figures in the reason, so the day it passes the marker must go.

Why 5 seeds: each seed labels 6 incidents, so 3 seeds hold 18 and one miss (17/18 = 0.944) is
below 0.95: the bar would mean "never miss one" rather than 95%. Pooled over 30, one miss is
0.967 and two fail it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import pandas as pd
import pytest

from couchwatch.evaluate.fleet import run_through_fleet
from tests.support.shapes import services_scenario, users_scenario
from tests.support.workforce import workforce_scenario
from workers.engine.evaluation import evaluate_scores
from workers.engine.evaluation.alerts import alert_reports
from workers.engine.evaluation.labels import load_labels
from workers.engine.evaluation.split import split_train_test, train_cutoffs
from workers.engine.model import fit_entity_model
from workers.engine.population import build_population
from workers.engine.scenarios import generate_scenario
from workers.settings import Settings

pytestmark = pytest.mark.unit

SEEDS = (1, 2, 3, 4, 5)
USERS = 40
DAYS = 28


@dataclass
class Pooled:
    """Alert figures of one scenario over the seeds (all severities)."""

    found: int = 0
    labels: int = 0
    hours_true: int = 0
    hours: int = 0
    benign_max_hours: int = 0

    @property
    def recall(self) -> float:
        return self.found / max(self.labels, 1)

    @property
    def precision(self) -> float:
        return self.hours_true / max(self.hours, 1)


def _scenario(
    generator: str, name: str, seed: int
) -> tuple[list[dict[str, Any]], Any, str, set[str]]:
    if generator == "scenarios":
        s = generate_scenario(name, users=USERS, days=DAYS, seed=seed)
        return s.events, s.labels, s.entity_field, {b.entity for b in s.benign}
    if generator == "workforce":
        w = workforce_scenario(name, users=USERS, days=DAYS, seed=seed)
        return w.events, w.labels, w.entity_field, {b for b, _ in w.benign}
    if name == "services":
        shaped = services_scenario(services=12, days=DAYS, seed=seed)
    else:
        shaped = users_scenario(name, users=USERS, days=DAYS, seed=seed)
    return shaped.events, shaped.labels, shaped.entity_field, {b for b, _ in shaped.benign}


@cache
def pooled(generator: str, name: str) -> Pooled:
    out = Pooled()
    for seed in SEEDS:
        events, labels_doc, field, benign = _scenario(generator, name, seed)
        settings = Settings(_env_file=None, couchwatch_entity_field=field)  # type: ignore[call-arg]
        run = run_through_fleet(
            events, train_cutoffs(events, field), settings=settings, entity_field=field
        )
        assert not run.entity_errors, run.entity_errors
        labels = load_labels(labels_doc)
        report = alert_reports(run.anomalies, labels)["all"]
        out.found += report.n_labels_found
        out.labels += report.n_labels
        out.hours_true += report.n_entity_hours_true
        out.hours += report.n_entity_hours
        hours: dict[str, set[str]] = {}
        for a in run.anomalies:
            if a["entity"] in benign:
                hours.setdefault(a["entity"], set()).add(a["window_start"][:13])
        out.benign_max_hours = max([out.benign_max_hours, *map(len, hours.values())])
    return out


@cache
def service_aucs(generator: str) -> tuple[float, ...]:
    """Pooled window ROC-AUC of the combined score per seed, the engine called directly: a
    metric stream has ~10k events per service, too many for the CouchDB twin in a unit test."""
    aucs = []
    for seed in SEEDS:
        if generator == "scenarios":
            s = generate_scenario("services", users=12, days=DAYS, seed=seed)
            events, labels_doc = s.events, s.labels
        else:
            shaped = services_scenario(services=12, days=DAYS, seed=seed)
            events, labels_doc = shaped.events, shaped.labels
        train, test = split_train_test(events, "service")
        population = build_population(train, entity_field="service")
        rows = []
        for entity in sorted({e["service"] for e in train}):
            mine = [e for e in train if e["service"] == entity]
            model = fit_entity_model(entity, mine, entity_field="service", population=population)
            scored = model.score([e for e in test if e["service"] == entity]).windows
            rows.append(scored.assign(entity=entity))
        frame = pd.concat(rows, ignore_index=True)
        aucs.append(evaluate_scores(frame, load_labels(labels_doc)).roc_auc)
    return tuple(aucs)


USER_SCENARIOS = [
    ("scenarios", "sparse"),
    ("scenarios", "shifts"),
    ("scenarios", "travel"),
    ("scenarios", "devices"),
    ("scenarios", "mixed"),
    ("shapes", "sparse"),
    ("shapes", "shifts"),
    ("shapes", "travel"),
    ("shapes", "mixed"),
    ("workforce", "rotating"),
    ("workforce", "parttime"),
    ("workforce", "remote"),
    ("workforce", "mixed"),
]
FLOORS: dict[tuple[str, str], tuple[float, float]] = {
    # (incident recall, entity-hour precision) pooled over the seeds, all severities
    **{case: (0.90, 0.80) for case in USER_SCENARIOS if case[0] != "workforce"},
    # below the bar today (see BELOW_BAR): floors a little under the measured figures
    ("workforce", "rotating"): (0.90, 0.45),
    ("workforce", "parttime"): (0.90, 0.65),
    ("workforce", "remote"): (0.90, 0.70),
    ("workforce", "mixed"): (0.90, 0.55),
}
ISSUE_BAR = (0.95, 0.80)


@pytest.mark.parametrize(("generator", "name"), USER_SCENARIOS)
def test_quality_floor_across_seeds(generator: str, name: str) -> None:
    figures = pooled(generator, name)
    recall_floor, precision_floor = FLOORS[(generator, name)]
    assert figures.labels >= 5 * len(SEEDS), figures
    assert figures.recall >= recall_floor, figures
    assert figures.precision >= precision_floor, figures


BELOW_BAR: dict[tuple[str, str], str] = {
    # measured 2026-12-07, seeds 1-5 (the other rows: recall >= 29/30, precision >= 0.88)
    ("workforce", "rotating"): "recall 30/30, precision 36/69 = 0.52 (first night pages, "
    "new shift blocks, trips)",
    ("workforce", "parttime"): "recall 30/30, precision 35/47 = 0.74",
    ("workforce", "remote"): "recall 30/30, precision 40/51 = 0.78 (trips, VPN exits)",
    ("workforce", "mixed"): "recall 30/30, precision 38/62 = 0.61",
}


def _bar_cases() -> list[Any]:
    return [
        pytest.param(g, n, marks=pytest.mark.xfail(strict=True, reason=f"below the bar: {why}"))
        if (why := BELOW_BAR.get((g, n)))
        else pytest.param(g, n)
        for g, n in USER_SCENARIOS
    ]


@pytest.mark.parametrize(("generator", "name"), _bar_cases())
def test_issue_bar_across_seeds(generator: str, name: str) -> None:
    """Issue 12's bar; a scenario listed in ``BELOW_BAR`` fails it today (strict xfail)."""
    figures = pooled(generator, name)
    recall_bar, precision_bar = ISSUE_BAR
    assert figures.recall >= recall_bar and figures.precision >= precision_bar, figures


@pytest.mark.parametrize(("generator", "name"), [("scenarios", "devices"), ("shapes", "mixed")])
def test_benign_new_devices_alert_at_most_once(generator: str, name: str) -> None:
    assert pooled(generator, name).benign_max_hours <= 1


@pytest.mark.parametrize("generator", ["scenarios", "shapes"])
def test_seasonal_services_are_ranked_well(generator: str) -> None:
    aucs = service_aucs(generator)
    assert len(aucs) == len(SEEDS)
    assert min(aucs) >= 0.80, aucs
