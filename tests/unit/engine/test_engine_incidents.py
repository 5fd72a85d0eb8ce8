"""Incidents: chaining anomalies per entity, stable ids, merged severity/score/reasons."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest

from workers.engine.incidents import group_incidents, incident_id
from workers.store.anomalies import anomaly_id
from workers.store.incidents import (
    incident_doc,
    inherit_review,
    merge_incident,
    supersede_incident,
)

pytestmark = pytest.mark.unit

NOW = datetime(2026, 3, 3, tzinfo=UTC)


def _a(
    start: str,
    end: str | None = None,
    *,
    entity: str = "alice",
    detector: str = "combined",
    score: float = 0.9,
    severity: str = "low",
    reasons: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A hand-built anomaly document (the fields grouping reads)."""
    return {
        "_id": anomaly_id(entity, detector, start),
        "type": "anomaly",
        "entity": entity,
        "entity_field": "user_id",
        "detector": detector,
        "window_start": start,
        "window_end": end or start,
        "score": score,
        "severity": severity,
        "reasons": reasons if reasons is not None else [{"feature": "events", "text": start}],
    }


def test_overlapping_and_near_anomalies_chain_into_one_incident() -> None:
    docs = [
        _a("2026-03-02T10:00:00Z", "2026-03-02T10:15:00Z"),
        _a("2026-03-02T10:15:00Z", "2026-03-02T10:30:00Z"),
        # 50 min after the previous end: within the 1 h gap, chained
        _a("2026-03-02T11:20:00Z", "2026-03-02T11:35:00Z"),
        # 3 h later: a new incident
        _a("2026-03-02T14:40:00Z", "2026-03-02T14:55:00Z"),
    ]
    incidents = group_incidents(docs)
    assert [i.n_anomalies for i in incidents] == [3, 1]
    first = incidents[0]
    assert (first.start, first.end) == ("2026-03-02T10:00:00.000Z", "2026-03-02T11:35:00.000Z")
    assert first.anomaly_ids == tuple(sorted(d["_id"] for d in docs[:3]))
    assert re.fullmatch(r"incident:[0-9a-f]{40}", first.incident_id)
    assert first.incident_id == incident_id("alice", docs[0]["_id"])


def test_gap_edge_is_inclusive_and_one_second_more_splits() -> None:
    a = _a("2026-03-02T10:00:00Z", "2026-03-02T10:15:00Z")
    at_gap = _a("2026-03-02T11:15:00Z", "2026-03-02T11:30:00Z")
    past_gap = _a("2026-03-02T11:15:01Z", "2026-03-02T11:30:00Z")
    assert len(group_incidents([a, at_gap])) == 1
    assert len(group_incidents([a, past_gap])) == 2
    assert len(group_incidents([a, at_gap], gap_s=0)) == 2
    with pytest.raises(ValueError):
        group_incidents([a], gap_s=-1)


def test_chain_is_measured_from_the_furthest_end_not_the_last_start() -> None:
    long = _a("2026-03-02T10:00:00Z", "2026-03-02T13:00:00Z")
    inside = _a("2026-03-02T10:30:00Z", "2026-03-02T10:45:00Z")
    after = _a("2026-03-02T13:30:00Z")  # 2h45 after `inside` ends, 30 min after `long` ends
    assert [i.n_anomalies for i in group_incidents([inside, after, long])] == [3]


def test_window_and_novelty_anomalies_group_across_detectors() -> None:
    window = _a("2026-03-02T10:00:00Z", "2026-03-02T10:15:00Z", detector="combined")
    login = _a("2026-03-02T10:05:00Z", detector="novelty", severity="high", score=0.99)
    (incident,) = group_incidents([login, window])
    assert incident.detectors == ("combined", "novelty")
    assert incident.severity == "high" and incident.score == 0.99


def test_entities_never_share_an_incident() -> None:
    docs = [_a("2026-03-02T10:00:00Z", entity="alice"), _a("2026-03-02T10:00:00Z", entity="bob")]
    incidents = group_incidents(docs)
    assert [i.entity for i in incidents] == ["alice", "bob"]
    assert incidents[0].incident_id != incidents[1].incident_id


def test_id_is_stable_when_a_later_anomaly_extends_the_incident_and_on_replay() -> None:
    docs = [_a("2026-03-02T10:00:00Z"), _a("2026-03-02T10:30:00Z")]
    before = group_incidents(docs)[0]
    later = _a("2026-03-02T11:00:00Z", severity="high")
    after = group_incidents([*reversed(docs), later, docs[0]])[0]  # order and duplicates ignored
    assert after.incident_id == before.incident_id
    assert after.n_anomalies == 3 and after.end == "2026-03-02T11:00:00.000Z"
    earlier = _a("2026-03-02T09:30:00Z")
    assert group_incidents([*docs, earlier])[0].incident_id != before.incident_id


def test_severity_is_the_max_and_score_the_max() -> None:
    docs = [
        _a("2026-03-02T10:00:00Z", severity="medium", score=0.95),
        _a("2026-03-02T10:15:00Z", severity="low", score=0.97),
        _a("2026-03-02T10:30:00Z", severity="medium", score=0.9),
    ]
    (incident,) = group_incidents(docs)
    assert incident.severity == "medium" and incident.score == 0.97


def test_reasons_are_merged_deduplicated_ranked_by_score_and_capped() -> None:
    same = {"feature": "country", "value": "BR", "text": "country BR is new"}
    docs = [
        _a("2026-03-02T10:00:00Z", score=0.91, reasons=[same, {"feature": "events", "text": "9"}]),
        _a(
            "2026-03-02T10:15:00Z",
            score=0.99,
            reasons=[{"feature": "bytes", "text": "bytes x40"}, dict(same)],
        ),
        _a("2026-03-02T10:30:00Z", score=0.5, reasons=[{"feature": "login", "value": None}]),
        _a("2026-03-02T10:45:00Z", score=0.4, reasons=[{"feature": "login", "value": None}]),
    ]
    (incident,) = group_incidents(docs)
    texts = [r.get("text") or r["feature"] for r in incident.reasons]
    assert texts == ["bytes x40", "country BR is new", "9", "login"]
    assert incident.reasons[0]["anomaly_id"] == docs[1]["_id"]
    many = [
        _a(f"2026-03-02T1{i}:00:00Z", reasons=[{"feature": "f", "text": f"r{i}"}]) for i in range(8)
    ]
    assert len(group_incidents(many)[0].reasons) == 5


def test_non_anomaly_documents_are_ignored() -> None:
    docs = [_a("2026-03-02T10:00:00Z"), {"_id": "incident:x", "type": "incident"}]
    assert [i.n_anomalies for i in group_incidents(docs)] == [1]
    assert group_incidents([]) == []


def test_incident_doc_and_merge_keep_review_and_only_move_updated_at_on_change() -> None:
    docs = [_a("2026-03-02T10:00:00Z"), _a("2026-03-02T10:30:00Z")]
    first = incident_doc(group_incidents(docs)[0], NOW)
    assert first["type"] == "incident" and first["review"]["status"] == "open"
    assert first["n_anomalies"] == 2 and first["created_at"] == "2026-03-03T00:00:00.000Z"
    reviewed = {**first, "_rev": "1-a", "review": {"status": "confirmed", "by": "ann", "at": "t"}}
    later_now = datetime(2026, 3, 4, tzinfo=UTC)
    replay = merge_incident(reviewed, incident_doc(group_incidents(docs)[0], later_now))
    assert replay == reviewed  # identical: nothing changed
    grown = incident_doc(group_incidents([*docs, _a("2026-03-02T11:00:00Z")])[0], later_now)
    merged = merge_incident(reviewed, grown)
    assert merged["n_anomalies"] == 3 and merged["review"]["status"] == "confirmed"
    assert merged["_rev"] == "1-a" and merged["created_at"] == first["created_at"]
    assert merged["updated_at"] == "2026-03-04T00:00:00.000Z"
    assert merge_incident(None, grown) == grown
    with pytest.raises(ValueError):
        merge_incident({**first, "_id": "incident:other"}, grown)


def test_supersede_and_inherit_review() -> None:
    old = incident_doc(group_incidents([_a("2026-03-02T10:00:00Z")])[0], NOW)
    old["review"] = {"status": "dismissed", "by": "ann", "at": "2026-03-03T01:00:00Z", "note": "x"}
    new = incident_doc(group_incidents([_a("2026-03-02T09:30:00Z")])[0], NOW)
    marked = supersede_incident(old, new["_id"], NOW)
    assert marked["superseded_by"] == new["_id"] and old["superseded_by"] is None
    assert supersede_incident(marked, new["_id"], datetime(2027, 1, 1, tzinfo=UTC)) == marked
    assert inherit_review(new, [old])["review"]["status"] == "dismissed"
    confirmed = {**new, "review": {"status": "confirmed"}}
    assert inherit_review(confirmed, [old])["review"]["status"] == "confirmed"
