"""Which registry entries `plan_training` picks (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from scheduler.planning import due_for_training

pytestmark = pytest.mark.unit
NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
FRESH = {"model_version": 2, "last_trained_at": "2026-11-22T11:00:00.000Z"}


def due(entry: dict[str, object], **kw: int) -> bool:
    return due_for_training(entry, now=NOW, retrain_after_s=86_400, min_new_events=100, **kw)


def test_reasons_to_train() -> None:
    assert due({})  # never trained
    assert not due(FRESH)
    assert due({**FRESH, "needs_retrain": True})
    assert due({**FRESH, "last_trained_at": "2026-11-20T00:00:00.000Z"})  # stale
    assert due({**FRESH, "events_since_training": 100})
    assert not due({**FRESH, "events_since_training": 99})


def test_repeated_failures_stop_automatic_retries() -> None:
    assert due({"train_failures": 4}, max_failures=5)
    assert not due({"train_failures": 5}, max_failures=5)
    assert not due({**FRESH, "needs_retrain": True, "train_failures": 7}, max_failures=5)
