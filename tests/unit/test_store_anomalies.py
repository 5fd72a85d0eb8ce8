"""Anomaly documents: deterministic, URL-safe ids; rescoring never resets a review."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from workers.store.anomalies import anomaly_id, feedback, make_anomaly, merge_anomaly

pytestmark = pytest.mark.unit

ODD = ["$gt", "../_all_docs", "%2F", "ünï/cödé", "a b?c#d", ""]


def _doc(entity: str = "alice", score: float = 0.9999, now: datetime | None = None) -> dict:
    return make_anomaly(
        entity=entity,
        entity_field="user_id",
        detector="combined",
        window_start="2026-03-02T10:00:00+02:00",
        window_end="2026-03-02T08:15:00Z",
        event_ids=["e1", "e2"],
        score=score,
        threshold=0.999,
        severity="low",
        confidence=0.8,
        reasons=[{"feature": "events", "value": 9, "expected": 3, "text": "t"}],
        model={"id": "m", "version": 3},
        now=now or datetime(2026, 3, 3, tzinfo=UTC),
    )


@pytest.mark.parametrize("entity", ODD)
def test_ids_are_deterministic_and_url_safe_for_odd_entities(entity: str) -> None:
    first = anomaly_id(entity, "novelty", "evt-1")
    assert first == anomaly_id(entity, "novelty", "evt-1")
    assert re.fullmatch(r"anomaly:[0-9a-f]{40}", first)
    assert first != anomaly_id(entity, "combined", "evt-1")
    assert first != anomaly_id(entity + "x", "novelty", "evt-1")


def test_document_contract_fields() -> None:
    doc = _doc()
    assert doc["type"] == "anomaly" and doc["review"]["status"] == "open"
    assert doc["window_start"] == "2026-03-02T08:00:00.000Z"
    assert doc["window_end"] == "2026-03-02T08:15:00.000Z"
    assert doc["_id"] == anomaly_id("alice", "combined", doc["window_start"])
    for key in (
        "entity",
        "entity_field",
        "detector",
        "event_ids",
        "score",
        "threshold",
        "severity",
        "confidence",
        "reasons",
        "model",
        "created_at",
        "updated_at",
    ):
        assert key in doc


def test_rescore_updates_scores_but_keeps_review_and_created_at() -> None:
    stored = {**_doc(), "_rev": "2-abc"}
    stored["review"] = {
        "status": "dismissed",
        "by": "ops",
        "at": "2026-03-04T00:00:00.000Z",
        "note": "new phone",
    }
    rescored = _doc(score=0.99999, now=datetime(2026, 3, 9, tzinfo=UTC))
    merged = merge_anomaly(stored, rescored)
    assert merged["score"] == 0.99999 and merged["_rev"] == "2-abc"
    assert merged["review"] == stored["review"]
    assert merged["created_at"] == stored["created_at"]
    assert merged["updated_at"] == "2026-03-09T00:00:00.000Z"
    same = merge_anomaly(merged, _doc(score=0.99999, now=datetime(2026, 3, 10, tzinfo=UTC)))
    assert same == merged  # replaying the same rescore changes nothing
    with pytest.raises(ValueError):
        merge_anomaly(stored, _doc(entity="bob"))


def test_feedback_from_reviewed_anomalies() -> None:
    docs = [
        {"event_ids": ["a", "b"], "review": {"status": "confirmed"}},
        {"event_ids": ["b", "c"], "review": {"status": "dismissed"}},
        {"event_ids": ["d"], "review": {"status": "open"}},
    ]
    fb = feedback(docs)
    assert fb.confirmed == {"a", "b"} and fb.dismissed == {"c"}
