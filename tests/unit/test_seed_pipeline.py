"""The seed pipeline (dense 15-min resample + IsolationForest) as a reference to beat."""

from __future__ import annotations

import pandas as pd
import pytest

from workers.engine.demo_data import generate_demo
from workers.engine.evaluation import SCORED_COLUMNS, evaluate_scores, load_labels
from workers.engine.seed_pipeline import (
    SEED_FEATURES,
    run_seed_pipelines,
    score_seed_global,
    seed_windows,
)

pytestmark = pytest.mark.unit


def test_seed_windows_are_dense_and_zero_filled() -> None:
    events = [
        {
            "user_id": "a",
            "timestamp": "2026-01-01T00:01:00Z",
            "bytes_sent": 100,
            "latency_ms": 10.0,
            "status_code": 200,
        },
        {
            "user_id": "a",
            "timestamp": "2026-01-01T00:05:00Z",
            "bytes_sent": 50,
            "latency_ms": 30.0,
            "status_code": 500,
        },
        {"user_id": "a", "timestamp": "2026-01-01T01:02:00Z", "bytes_sent": 7, "status_code": 401},
    ]
    windows = seed_windows(events)
    assert list(windows.columns) == ["entity", "window_start", *SEED_FEATURES]
    assert len(windows) == 5  # 00:00, 00:15, 00:30, 00:45, 01:00
    first, empty, last = windows.iloc[0], windows.iloc[1], windows.iloc[4]
    assert (first["bytes_sent"], first["latency_ms"], first["is_error"]) == (150, 20.0, 1)
    assert (empty["bytes_sent"], empty["latency_ms"], empty["is_error"]) == (0, 0, 0)
    assert (last["bytes_sent"], last["latency_ms"], last["is_error"], last["hour"]) == (7, 0, 1, 1)


@pytest.fixture(scope="module")
def small_run() -> tuple[dict[str, pd.DataFrame], object]:
    scenario = generate_demo(users=8, days=10, seed=5)
    return run_seed_pipelines(scenario.events), scenario


def test_seed_pipelines_return_scored_frames_in_unit_range(small_run) -> None:
    runs, scenario = small_run
    assert set(runs) == {"seed_global", "seed_per_entity"}
    for name, scored in runs.items():
        assert set(SCORED_COLUMNS) <= set(scored.columns)
        assert (scored["detector"] == name).all()
        assert scored["score"].between(0.0, 1.0).all()
        assert scored["flagged"].dtype == bool and scored["flagged"].any()
        assert (scored["window_end"] - scored["window_start"] == pd.Timedelta("15min")).all()
        assert scored["entity"].nunique() == 8
        report = evaluate_scores(scored, load_labels(scenario.labels))
        assert report.n_incidents == len(scenario.incidents) == 5
        assert 0.0 <= report.incident_recall <= 1.0


def test_only_the_test_split_is_scored(small_run) -> None:
    runs, scenario = small_run
    first = pd.Timestamp(scenario.events[0]["timestamp"])
    last = pd.Timestamp(scenario.events[-1]["timestamp"])
    earliest = runs["seed_global"]["window_start"].min()
    assert earliest > first + (last - first) * 0.5


def test_seed_global_is_deterministic_and_scores_night_traffic_higher() -> None:
    def event(ts: str) -> dict[str, object]:
        return {
            "user_id": "a",
            "timestamp": ts,
            "bytes_sent": 1000,
            "latency_ms": 50.0,
            "status_code": 200,
        }

    normal = [
        event(f"2026-01-0{d}T{h:02d}:{m:02d}:00Z")
        for d in range(1, 8)
        for h in range(9, 17)
        for m in (0, 20, 40)
    ]
    test = [event("2026-01-08T03:05:00Z"), event("2026-01-08T10:05:00Z")]
    a = score_seed_global(normal, test)
    pd.testing.assert_frame_equal(a, score_seed_global(normal, test))
    by_start = a.set_index("window_start")["score"]
    night, day = pd.Timestamp("2026-01-08T03:00Z"), pd.Timestamp("2026-01-08T10:00Z")
    assert by_start[night] > by_start[day]
