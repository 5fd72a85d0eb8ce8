"""Evaluation: labels validation, metrics on hand-computed cases, split, report, plots."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from workers.engine.evaluation import (
    Labels,
    LabelsError,
    evaluate_by,
    evaluate_scores,
    format_report,
    load_labels,
    plot_entities,
    plot_entity,
    split_train_test,
    to_markdown,
    train_cutoffs,
)

pytestmark = pytest.mark.unit

DAY = "2026-01-20T"
LABELS_DOC = {
    "u1": [[f"{DAY}10:00:00.000Z", f"{DAY}10:30:00.000Z"]],
    "u2": [[f"{DAY}12:00:00.000Z", f"{DAY}12:05:00.000Z"]],
    "u3": [[f"{DAY}08:00:00.000Z", f"{DAY}09:00:00.000Z"]],
    "kinds": {"u1": ["account_takeover"], "u2": ["credential_stuffing"], "u3": ["exfil"]},
}


def _row(entity: str, start: str, end: str, score: float, flagged: bool) -> dict[str, object]:
    return {
        "entity": entity,
        "window_start": f"{DAY}{start}Z",
        "window_end": f"{DAY}{end}Z",
        "score": score,
        "flagged": flagged,
    }


# Hand-computed: u1 and u2 are overlapped by flagged rows, u3 only by an unflagged one (its
# flagged window ends exactly where the span starts: half-open, so no overlap).
SCORED = pd.DataFrame(
    [
        _row("u1", "10:00:00", "10:15:00", 0.90, True),  # positive, flagged
        _row("u1", "10:15:00", "10:30:00", 0.80, True),  # positive, flagged
        _row("u1", "11:00:00", "11:15:00", 0.70, True),  # negative, flagged
        _row("u2", "12:05:00", "12:05:00", 0.60, True),  # event at the span's end: positive
        _row("u3", "07:45:00", "08:00:00", 0.95, True),  # ends at span start: negative
        _row("u3", "08:30:00", "08:45:00", 0.20, False),  # positive, not flagged
        _row("u4", "09:00:00", "09:15:00", 0.10, False),  # negative
    ]
)


@pytest.fixture
def labels() -> Labels:
    return load_labels(LABELS_DOC)


def test_load_labels_reads_spans_and_kinds(labels: Labels) -> None:
    assert len(labels) == 3
    assert labels.entities() == {"u1", "u2", "u3"}
    (u1,) = labels.for_entity("u1")
    assert u1.kind == "account_takeover"
    assert u1.start == pd.Timestamp("2026-01-20T10:00:00Z")
    assert load_labels({"x": [["2026-01-01T00:00:00+02:00", 1767225600]]}).incidents[0].kind == (
        "unknown"
    )


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([["a", "b"]], "expected a JSON object"),
        ({"u1": "2026-01-01"}, "must map to a list"),
        ({"u1": [["2026-01-01T00:00:00Z"]]}, "span 0 must be a \\[start, end\\] pair"),
        ({"u1": [["yesterday", "2026-01-01T00:00:00Z"]]}, "span 0 start 'yesterday' is not"),
        ({"u1": [["2026-01-02T00:00:00Z", "2026-01-01T00:00:00Z"]]}, "ends before it starts"),
        ({"u1": [["2026-01-01", None]]}, "span 0 end must be an ISO 8601 string"),
        ({"u1": [["2026-01-01", "2026-01-02"]], "kinds": {"u1": []}}, "list of 1 non-empty"),
        ({"u1": [], "kinds": {"u9": ["x"]}}, "entity 'u9' which has no spans"),
        ({"u1": [], "kinds": ["x"]}, "'kinds' must be an object"),
        ({"": []}, "non-empty strings"),
    ],
)
def test_bad_labels_give_a_clear_one_line_error(doc: object, message: str) -> None:
    with pytest.raises(LabelsError, match=message) as info:
        load_labels(doc)
    assert "\n" not in str(info.value)


def test_metrics_on_a_hand_computed_case(labels: Labels) -> None:
    report = evaluate_scores(SCORED, labels)
    assert (report.n_incidents, report.n_detected) == (3, 2)
    assert report.incident_recall == pytest.approx(2 / 3)
    assert (report.n_flagged, report.n_flagged_true) == (5, 3)
    assert report.alert_precision == pytest.approx(0.6)
    assert report.f1 == pytest.approx(2 * (2 / 3) * 0.6 / (2 / 3 + 0.6))
    assert report.n_positive_rows == 4
    # positives .9 .8 .6 .2 vs negatives .95 .7 .1: 6 of 12 pairs ordered right
    assert report.roc_auc == pytest.approx(0.5)
    # ranks of positives 2, 3, 5, 6 → (1/2 + 2/3 + 3/5 + 4/6) / 4
    assert report.pr_auc == pytest.approx((1 / 2 + 2 / 3 + 3 / 5 + 4 / 6) / 4)
    assert report.k == 3 and report.precision_at_k == pytest.approx(2 / 3)
    assert report.recall_by_kind == {
        "account_takeover": 1.0,
        "credential_stuffing": 1.0,
        "exfil": 0.0,
    }
    assert [m.entity for m in report.missed] == ["u3"]
    assert evaluate_scores(SCORED, labels, k=1).precision_at_k == 0.0


def test_perfect_and_silent_detectors(labels: Labels) -> None:
    truth = [True, True, False, True, False, True, False]
    perfect = SCORED.assign(flagged=truth, score=[0.9, 0.8, 0.1, 0.7, 0.2, 0.6, 0.0])
    report = evaluate_scores(perfect, labels)
    assert report.incident_recall == report.alert_precision == report.f1 == 1.0
    assert report.roc_auc == report.pr_auc == 1.0
    silent = evaluate_scores(SCORED.assign(flagged=False), labels)
    assert silent.incident_recall == silent.alert_precision == silent.f1 == 0.0


def test_undefined_auc_is_nan_and_unscored_incident_is_missed(labels: Labels) -> None:
    only_u4 = SCORED[SCORED["entity"] == "u4"]
    report = evaluate_scores(only_u4, labels)
    assert math.isnan(report.roc_auc) and math.isnan(report.pr_auc)
    assert report.n_detected == 0 and report.incident_recall == 0.0
    assert report.as_dict()["roc_auc"] is None


def test_scored_frame_is_checked(labels: Labels) -> None:
    with pytest.raises(ValueError, match="lacks column"):
        evaluate_scores(SCORED.drop(columns=["flagged"]), labels)


def test_evaluate_by_detector(labels: Labels) -> None:
    both = pd.concat([SCORED.assign(detector="a"), SCORED.assign(detector="b", flagged=False)])
    reports = evaluate_by(both, labels)
    assert list(reports) == ["a", "b"]
    assert reports["a"].n_detected == 2 and reports["b"].n_detected == 0


def test_format_report_and_markdown(labels: Labels) -> None:
    reports = {"combined": evaluate_scores(SCORED, labels), "seed": evaluate_scores(SCORED, labels)}
    text = format_report(reports)
    assert "combined" in text and "seed" in text
    assert "2/3" in text and "0.667" in text and "0.600" in text
    assert "credential_stuffing" in text
    md = to_markdown(reports)
    assert md.startswith("| detector |") and "| combined | 2/3 | 0.667 |" in md


def _events() -> list[dict[str, object]]:
    stamps = pd.date_range("2026-01-01", periods=11, freq="h", tz="UTC")
    a = [{"user_id": "a", "timestamp": t.isoformat(), "n": i} for i, t in enumerate(stamps)]
    b = [{"user_id": "b", "timestamp": 1767225600 + 3600 * i, "n": i} for i in range(5)]
    return a + b


def test_split_per_entity_keeps_first_70_percent_for_training() -> None:
    train, test = split_train_test(_events(), "user_id")
    # a spans 10 h → cutoff 07:00, b spans 4 h from 00:00 → cutoff 02:48
    assert [e["n"] for e in train if e["user_id"] == "a"] == list(range(7))
    assert [e["n"] for e in test if e["user_id"] == "a"] == [7, 8, 9, 10]
    assert [e["n"] for e in test if e["user_id"] == "b"] == [3, 4]
    cutoffs = train_cutoffs(_events(), "user_id")
    assert cutoffs["a"] == pd.Timestamp("2026-01-01T07:00:00Z")


def test_split_with_a_global_cutoff_and_frames() -> None:
    frame = pd.DataFrame(_events())
    train, test = split_train_test(frame, "user_id", train_until="2026-01-01T02:00:00Z")
    assert isinstance(train, pd.DataFrame)
    assert len(train) == 2 + 2 and len(test) == len(frame) - 4
    with pytest.raises(ValueError, match="train_fraction"):
        split_train_test(_events(), "user_id", train_fraction=1.5)


def test_plots_are_written(tmp_path, labels: Labels) -> None:
    events = [
        {"user_id": "u1", "timestamp": f"{DAY}10:0{i}:00Z", "type": "request"} for i in range(5)
    ]
    path = plot_entity(
        tmp_path, "u1", SCORED, labels, events=events, threshold=0.75, cutoff=f"{DAY}09:00:00Z"
    )
    assert path == tmp_path / "u1.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    written = plot_entities(tmp_path / "plots", SCORED, labels)
    assert sorted(p.name for p in written) == ["u1.png", "u2.png", "u3.png"]
