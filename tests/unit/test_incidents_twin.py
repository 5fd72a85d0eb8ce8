"""Incident documents on the in-memory CouchDB 3 twin: refresh after scoring, replay, extend,
supersede, and an incident's review reaching its anomalies (was tests/integration/
test_incidents_store.py on PouchDB Server; the CouchDB behaviour it relies on, bulk upsert
merges and get_many, is held to both servers by tests/contract/)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from workers.couch.client import CouchClient
from workers.couch.memory import MemoryCouchClient
from workers.couch.schema import ensure_schema
from workers.incidents import get_incident, refresh_incidents, review_incident
from workers.settings import Settings
from workers.store.anomalies import make_anomaly, merge_anomaly

pytestmark = pytest.mark.unit
BASE = datetime(2026, 3, 2, 10, tzinfo=UTC)


def _write(couch: CouchClient, settings: Settings, specs: list[tuple[str, int, str]]) -> list[Any]:
    """Upsert anomalies (entity, minutes after BASE, severity) as scoring does; return them."""
    docs = [
        make_anomaly(
            entity=entity,
            entity_field="user_id",
            detector="combined",
            window_start=BASE + timedelta(minutes=m),
            window_end=BASE + timedelta(minutes=m + 15),
            event_ids=[f"e{m}"],
            score=0.9 + m / 10_000,
            threshold=0.8,
            severity=sev,
            confidence=1.0,
            reasons=[{"feature": "events", "text": f"reason at {m}"}],
            model={"v": 1},
        )
        for entity, m, sev in specs
    ]
    result = couch.bulk_upsert(settings.db_name("anomalies"), docs, merge=merge_anomaly)
    assert not result.failed
    return docs


def _incidents(couch: CouchClient, settings: Settings) -> dict[str, dict[str, Any]]:
    return {d["_id"]: d for d in couch.iter_all_docs(settings.db_name("incidents"))}


def test_refresh_groups_replays_extends_supersedes_and_review_reaches_anomalies() -> None:
    settings = Settings(_env_file=None, couchwatch_db_prefix="cw_")  # type: ignore[call-arg]
    couch = MemoryCouchClient()
    ensure_schema(couch, settings)
    first = _write(
        couch, settings, [("alice", 0, "low"), ("alice", 30, "medium"), ("bob", 0, "high")]
    )
    result = refresh_incidents(couch, settings, first)
    stored = _incidents(couch, settings)
    assert len(stored) == 2 and len(result.incident_ids) == 2
    alice = next(d for d in stored.values() if d["entity"] == "alice")
    assert alice["n_anomalies"] == 2 and alice["severity"] == "medium"
    marks = couch.get_many(settings.db_name("anomalies"), [d["_id"] for d in first])
    assert {m["incident_id"] for m in marks.values()} == set(stored)

    again = refresh_incidents(couch, settings, first)  # a replay writes nothing
    assert again.written == 0 and again.anomalies_marked == 0
    assert _incidents(couch, settings) == stored

    reviewed = review_incident(couch, settings, alice["_id"], "confirmed", note="ato", by="ann")
    assert reviewed["review"]["status"] == "confirmed"
    reviews = couch.get_many(settings.db_name("anomalies"), alice["anomaly_ids"])
    assert {a["review"]["status"] for a in reviews.values()} == {"confirmed"}

    # a later anomaly 100 min on (55 min after the last end) extends it: same id, review kept
    later = _write(couch, settings, [("alice", 100, "high")])
    refresh_incidents(couch, settings, later)
    grown = _incidents(couch, settings)[alice["_id"]]
    assert grown["n_anomalies"] == 3 and grown["severity"] == "high"
    assert grown["review"]["status"] == "confirmed" and grown["created_at"] == alice["created_at"]

    # an earlier anomaly now leads the chain: a new id, the old one points at it
    earlier = _write(couch, settings, [("alice", -60, "low")])
    (new_id,) = refresh_incidents(couch, settings, earlier).incident_ids
    assert new_id != alice["_id"]
    everything = _incidents(couch, settings)
    assert everything[alice["_id"]]["superseded_by"] == new_id
    assert everything[new_id]["n_anomalies"] == 4
    assert everything[new_id]["review"]["status"] == "confirmed"  # carried over
    assert get_incident(couch, settings, alice["_id"])["_id"] == new_id
    marks = couch.get_many(settings.db_name("anomalies"), everything[new_id]["anomaly_ids"])
    assert {m["incident_id"] for m in marks.values()} == {new_id}
    assert refresh_incidents(couch, settings, [*first, *later, *earlier]).written == 0
