"""evaluate_events on a small seeded scenario (quality floors) and the evaluate CLI's errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from couchwatch.cli import evaluate_cmd
from couchwatch.cli.evaluate_cmd import demo_data, evaluate
from couchwatch.evaluate.run import COMBINED, RUN_COLUMNS, combined_rows, evaluate_events
from workers.engine.demo_data import generate_demo
from workers.engine.evaluation import EvaluationReport, load_labels
from workers.settings import get_settings

pytestmark = pytest.mark.unit

# Measured on users=8, days=14, seed=3: combined recall 1.000, precision 1.000, F1 1.000;
# seed_global F1 0.344, seed_per_entity F1 0.330. Floors leave a margin for engine tuning.
MIN_COMBINED_RECALL = 0.8
MIN_COMBINED_PRECISION = 0.8


Run = tuple[dict[str, EvaluationReport], pd.DataFrame, dict[str, pd.Timestamp], int]


@pytest.fixture(scope="module")
def run() -> Run:
    scenario = generate_demo(users=8, days=14, seed=3)
    labels = load_labels(scenario.labels)
    reports, scored, cutoffs = evaluate_events(scenario.events, labels, entity_field="user_id")
    return reports, scored, cutoffs, len(labels)


def test_reports_for_combined_detectors_and_seed_variants(run: Run) -> None:
    reports, scored, cutoffs, n_incidents = run
    assert next(iter(reports)) == COMBINED
    # window detectors get their own report only when the engine gives them their own
    # threshold and flags (score_/threshold_/flagged_<name>); today it flags combined windows
    assert {"combined", "novelty", "seed_global", "seed_per_entity"} <= set(reports)
    for name, report in reports.items():
        assert report.n_incidents == n_incidents, name
        for value in (
            report.incident_recall,
            report.alert_precision,
            report.f1,
            report.roc_auc,
            report.pr_auc,
            report.precision_at_k,
        ):
            assert math.isnan(value) or 0.0 <= value <= 1.0, (name, value)
    assert list(scored.columns) == list(RUN_COLUMNS)
    assert set(cutoffs) == set(scored["entity"])


def test_only_events_after_the_cutoff_are_scored(run: Run) -> None:
    _, scored, cutoffs, _ = run
    ours = scored[~scored["detector"].str.startswith("seed")]
    limits = ours["entity"].map(cutoffs)
    # a window may start before the cutoff only when the cutoff falls inside it
    assert (ours["window_end"] > limits).all()


def test_combined_quality_floor_and_beats_the_seed(run: Run) -> None:
    reports = run[0]
    combined = reports[COMBINED]
    assert combined.incident_recall >= MIN_COMBINED_RECALL
    assert combined.alert_precision >= MIN_COMBINED_PRECISION
    assert combined.f1 > reports["seed_global"].f1
    assert combined.f1 > reports["seed_per_entity"].f1


def test_combined_rows_are_the_scores_csv_shape(run: Run) -> None:
    rows = combined_rows(run[1])
    assert list(rows.columns) == ["entity", "window_start", "window_end", "score", "flagged"]
    assert len(rows) == int((run[1]["detector"] == COMBINED).sum())
    assert rows["score"].between(0.0, 1.0).all()


def test_evaluate_events_refuses_no_events() -> None:
    with pytest.raises(ValueError, match="no events"):
        evaluate_events([], load_labels({}), entity_field="user_id")


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        json.dumps({"u1": [["2026-01-20T10:00:00Z"]]}),
        json.dumps({"u1": [["yesterday", "2026-01-20T10:00:00Z"]]}),
        json.dumps([1, 2]),
    ],
)
def test_evaluate_bad_labels_file_is_one_error_line_before_couchdb(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str
) -> None:
    def no_couch(*_: object) -> None:
        raise AssertionError("CouchDB must not be touched before the labels are valid")

    monkeypatch.setattr(evaluate_cmd, "couch_or_fail", no_couch)
    labels = tmp_path / "labels.json"
    labels.write_text(content, encoding="utf-8")
    result = CliRunner().invoke(evaluate, ["--labels", str(labels)])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("couchwatch: error:") and str(labels) in lines[0]


def test_evaluate_missing_labels_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(evaluate_cmd, "couch_or_fail", lambda *_: pytest.fail("touched CouchDB"))
    result = CliRunner().invoke(evaluate, ["--labels", str(tmp_path / "nope.json")])
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and "cannot read labels" in result.output


def test_demo_data_writes_events_and_labels(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        demo_data,
        [str(tmp_path / "demo"), "--users", "5", "--days", "4", "--entity-field", "user_id"],
    )
    assert result.exit_code == 0, result.output
    events = (tmp_path / "demo" / "events.jsonl").read_text(encoding="utf-8").splitlines()
    labels = load_labels(json.loads((tmp_path / "demo" / "labels.json").read_text()))
    assert len(events) > 100 and len(labels) >= 1
    assert f"wrote {len(events)} events" in result.output


class _FakeCouch:
    def __init__(self, docs: list[dict[str, object]]) -> None:
        self.docs = docs
        self.dbs: list[str] = []

    def iter_all_docs(self, db: str) -> list[dict[str, object]]:
        self.dbs.append(db)
        return [{**d, "_rev": "1-x"} for d in self.docs] + [{"_id": "no-entity", "x": 1}]


def test_evaluate_prints_table_and_writes_scores_and_plots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario = generate_demo(users=5, days=6, seed=2)
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps(scenario.labels), encoding="utf-8")
    fake = _FakeCouch(scenario.events)
    monkeypatch.setattr(evaluate_cmd, "couch_or_fail", lambda *_: fake)
    scores, plots = tmp_path / "scores.csv", tmp_path / "plots"
    args = ["--labels", str(labels), "--scores-out", str(scores), "--plot", str(plots)]
    result = CliRunner().invoke(evaluate, args)
    assert result.exit_code == 0, result.output
    assert fake.dbs == [get_settings().events_db]
    for column in ("recall", "precision", "F1", "ROC-AUC", "PR-AUC", "P@k", "seed_global"):
        assert column in result.output
    written = pd.read_csv(scores)
    assert list(written.columns) == ["entity", "window_start", "window_end", "score", "flagged"]
    assert len(written) > 0 and written["score"].between(0, 1).all()
    pngs = sorted(plots.glob("*.png"))
    assert pngs and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
