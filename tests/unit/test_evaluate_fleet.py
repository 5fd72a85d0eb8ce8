"""The evaluation path on twins: the fleet's planners, training and scoring, and the alert
figures an analyst would meet (distinct entity-hours, incidents, per severity)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from couchwatch.cli import evaluate_cmd
from couchwatch.cli.evaluate_cmd import evaluate
from couchwatch.evaluate.fleet import SCORE_TASK, TRAIN_TASK, FleetRun, run_through_fleet
from couchwatch.evaluate.run import COMBINED, fleet_rows
from workers.engine.demo_data import generate_demo
from workers.engine.evaluation import load_labels
from workers.engine.evaluation.alerts import FALSE_ALERT_COLUMNS, alert_reports, false_alerts
from workers.engine.evaluation.split import train_cutoffs
from workers.settings import Settings

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def scenario_run() -> tuple[list[dict[str, object]], dict[str, pd.Timestamp], FleetRun]:
    # the default start (2026-01-05) is far more than the 90-day history window before today:
    # only the fleet's injected clock lets training see any of it
    scenario = generate_demo(users=5, days=8, seed=2)
    cutoffs = train_cutoffs(scenario.events, "user_id")
    run = run_through_fleet(
        scenario.events, cutoffs, settings=Settings(_env_file=None), entity_field="user_id"
    )
    return scenario.events, cutoffs, run


def test_the_fleet_trains_every_entity_at_the_data_clock(scenario_run) -> None:  # type: ignore[no-untyped-def]
    events, cutoffs, run = scenario_run
    assert run.entity_errors == {}
    trained = sorted(e for task, args in run.tasks if task == TRAIN_TASK for e in args[0])
    assert trained == sorted(cutoffs)
    assert run.ingested["train"] + run.ingested["test"] == len(events)
    # the train phase's pass has nothing to score with yet (no population, no model): its
    # events wait and are kept as the first models' history; the test phase's pass scores
    assert [t for t, _ in run.tasks].count(SCORE_TASK) == 1
    assert run.results and all(not r.model.cold_start for _, r in run.results)
    assert all(r.model.n_train_events > 0 for _, r in run.results)


def test_rows_come_from_the_scored_results_and_anomalies_from_their_flags(scenario_run) -> None:  # type: ignore[no-untyped-def]
    _, cutoffs, run = scenario_run
    rows = fleet_rows(run.results)
    combined = rows[rows["detector"] == COMBINED]
    assert len(combined) == sum(len(r.windows) + len(r.logins) for _, r in run.results)
    assert combined["score"].between(0.0, 1.0).all()
    # a window may start before the cutoff only when the cutoff falls inside it
    assert (combined["window_end"] > combined["entity"].map(cutoffs)).all()
    # every anomaly the fleet wrote is one of the flagged rows it scored
    flagged = combined[combined["flagged"]]
    starts = {
        (e, pd.Timestamp(t))
        for e, t in zip(flagged["entity"], flagged["window_start"], strict=True)
    }
    assert run.anomalies
    assert all((a["entity"], pd.Timestamp(a["window_start"])) in starts for a in run.anomalies)
    assert len(run.anomalies) == len(flagged)


def _anomaly(entity: str, start: str, end: str, severity: str, n: int) -> dict[str, object]:
    return {
        "_id": f"a{n}",
        "type": "anomaly",
        "entity": entity,
        "entity_field": "user_id",
        "detector": "combined",
        "window_start": start,
        "window_end": end,
        "score": 0.99,
        "severity": severity,
        "reasons": [{"text": f"reason {n}"}],
    }


def test_alert_figures_count_entity_hours_and_incidents_per_severity() -> None:
    labels = load_labels({"u1": [["2026-01-10T10:00:00Z", "2026-01-10T10:40:00Z"]]})
    anomalies = [
        # two windows in the same hour of u1, inside the label: one entity-hour, one incident
        _anomaly("u1", "2026-01-10T10:00:00Z", "2026-01-10T10:15:00Z", "high", 1),
        _anomaly("u1", "2026-01-10T10:15:00Z", "2026-01-10T10:30:00Z", "low", 2),
        # u1 a day later: a false entity-hour and a false incident
        _anomaly("u1", "2026-01-11T03:00:00Z", "2026-01-11T03:15:00Z", "medium", 3),
        # u2 has no label at all
        _anomaly("u2", "2026-01-10T10:00:00Z", "2026-01-10T10:15:00Z", "low", 4),
    ]
    reports = alert_reports(anomalies, labels)
    assert list(reports) == ["all", "medium+high", "high"]
    every = reports["all"]
    assert (every.n_anomalies, every.n_entity_hours, every.n_entity_hours_true) == (4, 3, 1)
    assert every.entity_hour_precision == pytest.approx(1 / 3)
    assert (every.n_incidents, every.n_incidents_true) == (3, 1)
    assert every.label_recall == 1.0
    mid = reports["medium+high"]
    assert (mid.n_entity_hours, mid.n_entity_hours_true, mid.n_incidents) == (2, 1, 2)
    high = reports["high"]
    assert (high.entity_hour_precision, high.incident_precision, high.label_recall) == (1, 1, 1)
    wrong = false_alerts(anomalies, labels)
    assert list(wrong.columns) == list(FALSE_ALERT_COLUMNS)
    assert list(zip(wrong["entity"], wrong["reason"], strict=True)) == [
        ("u1", "reason 3"),
        ("u2", "reason 4"),
    ]


def test_a_window_ending_on_the_hour_is_one_entity_hour() -> None:
    labels = load_labels({"u1": [["2026-01-10T11:00:00Z", "2026-01-10T11:30:00Z"]]})
    report = alert_reports(
        [_anomaly("u1", "2026-01-10T10:45:00Z", "2026-01-10T11:00:00Z", "high", 1)], labels
    )["all"]
    assert (report.n_entity_hours, report.n_entity_hours_true) == (1, 0)


class _FakeCouch:
    def __init__(self, docs: list[dict[str, object]]) -> None:
        self.docs = docs

    def iter_all_docs(self, db: str) -> list[dict[str, object]]:
        return [{**d, "_rev": "1-x"} for d in self.docs]


def test_evaluate_prints_alert_tables_and_writes_false_alerts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario = generate_demo(users=5, days=6, seed=2)
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps(scenario.labels), encoding="utf-8")
    monkeypatch.setattr(evaluate_cmd, "couch_or_fail", lambda *_: _FakeCouch(scenario.events))
    out = tmp_path / "false.csv"
    result = CliRunner().invoke(evaluate, ["--labels", str(labels), "--false-alerts", str(out)])
    assert result.exit_code == 0, result.output
    for words in ("entity-hours", "incidents", "medium+high", "labels found"):
        assert words in result.output
    written = pd.read_csv(out)
    assert list(written.columns) == list(FALSE_ALERT_COLUMNS)
    assert f"wrote {len(written)} false alerts" in result.output
