"""`workers/event_store.py` on the in-memory CouchDB 3 twin: a 409 is a duplicate only when the
stored event has the same content (issue 13, item 4: event-id squatting)."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from workers.couch.client import BulkResult
from workers.couch.memory import MemoryCouchClient
from workers.event_store import SALT_DOC, alternate_id, id_salt, same_content, store
from workers.events import validate_event
from workers.ingest import ingest_stream
from workers.settings import Settings

pytestmark = pytest.mark.unit

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DB = "events"


def valid(**fields: Any) -> dict[str, Any]:
    raw = {"user_id": "alice", "timestamp": "2026-03-01T10:00:00Z", "type": "login", **fields}
    doc = validate_event(raw, entity_field="user_id", now=NOW)
    assert isinstance(doc, dict), doc
    return doc


@pytest.fixture
def couch() -> MemoryCouchClient:
    client = MemoryCouchClient()
    client.ensure_db(DB)
    return client


def test_a_squatted_content_id_stores_the_real_event_under_an_alternate_id(
    couch: MemoryCouchClient,
) -> None:
    real = valid(country="DE", bytes_sent=100)
    squat = {**valid(country="KP"), "_id": real["_id"]}  # a client may set `_id`
    assert [w.status for w in store(couch, DB, [squat])] == ["stored"]

    (first,) = store(couch, DB, [real])
    assert first.status == "conflict" and first.original_id == real["_id"]
    assert first.id.startswith(real["_id"] + "~") and len(first.id) == len(real["_id"]) + 21
    assert "already holds a different event" in str(first.reason)
    kept = couch.get(DB, first.id)
    assert kept is not None and same_content(kept, real)
    # the squatter's document is untouched, and sending the real event again adds nothing
    assert couch.get(DB, real["_id"])["country"] == "KP"  # type: ignore[index]
    (again,) = store(couch, DB, [real])
    assert again.status == "duplicate" and again.id == first.id


def test_the_same_content_is_a_duplicate_even_when_numbers_come_back_as_ints(
    couch: MemoryCouchClient,
) -> None:
    event = valid(latency_ms=5.0, bytes_sent=1e15)
    # what PouchDB Server (JavaScript) stores: 5.0 -> 5, 1e15 -> 1000000000000000
    couch.bulk_docs(DB, [{**event, "latency_ms": 5, "bytes_sent": 10**15}])
    out = store(couch, DB, [event, dict(event)])
    assert [w.status for w in out] == ["duplicate", "duplicate"]
    assert {w.id for w in out} == {event["_id"]}


def test_two_different_events_under_one_id_in_one_batch_are_both_kept(
    couch: MemoryCouchClient,
) -> None:
    a, b = valid(_id="order-17", type="login"), valid(_id="order-17", type="logout")
    out = store(couch, DB, [a, b, dict(a)])
    assert [w.status for w in out] == ["stored", "conflict", "duplicate"]
    assert out[1].id != "order-17" and couch.get(DB, out[1].id)["type"] == "logout"  # type: ignore[index]


def test_an_alternate_id_taken_by_other_content_is_an_id_mismatch(
    couch: MemoryCouchClient,
) -> None:
    real = valid(country="DE")
    salt = id_salt(couch, DB)  # someone who could read the salt squats the alternate id too
    couch.bulk_docs(
        DB,
        [
            {**valid(country="KP"), "_id": real["_id"]},
            {**valid(country="RU"), "_id": alternate_id(salt, real)},
        ],
    )
    (out,) = store(couch, DB, [real])
    assert out.status == "id_mismatch" and str(out.reason).startswith("id_mismatch: ")


def test_the_salt_is_random_per_database_created_once_and_kept(couch: MemoryCouchClient) -> None:
    first = id_salt(couch, DB)
    assert len(first) == 64 and id_salt(couch, DB) == first
    other = MemoryCouchClient()
    other.ensure_db(DB)
    assert id_salt(other, DB) != first
    assert couch.get_local(DB, SALT_DOC)["salt"] == first  # type: ignore[index]


def test_ingest_reports_conflicts_and_stores_the_real_event(couch: MemoryCouchClient) -> None:
    cfg = Settings(
        _env_file=None,
        couchwatch_events_db=DB,
        couchwatch_db_prefix="cw_",
        couchdb_user="u",
        couchdb_password="p",
    )  # type: ignore[call-arg]
    couch.ensure_db(cfg.db_name("quarantine"))
    lines = [
        {"user_id": "alice", "timestamp": f"2026-03-01T10:0{i}:00Z", "type": "login"}
        for i in range(3)
    ]
    ids = [valid(timestamp=e["timestamp"])["_id"] for e in lines]
    couch.bulk_docs(DB, [{**valid(type="squat"), "_id": ids[1]}])
    data = "".join(json.dumps(e) + "\n" for e in lines).encode()

    report = ingest_stream(couch, cfg, io.BytesIO(data), fmt="jsonl", source="t", now=NOW)
    again = ingest_stream(couch, cfg, io.BytesIO(data), fmt="jsonl", source="t", now=NOW)

    assert (report.accepted, report.conflicts, report.duplicates, report.rejected) == (2, 1, 0, 0)
    assert (again.accepted, again.conflicts, again.duplicates, again.rejected) == (0, 0, 3, 0)
    stored = [d for d in couch.iter_all_docs(DB) if d.get("type") == "login"]
    assert len(stored) == 3


class ShuffledReplies(MemoryCouchClient):
    """PouchDB Server does not always answer `_bulk_docs` in request order (seen in
    test_poison_input.py: a squatted event reported `stored` under its own id)."""

    def bulk_docs(self, db: str, docs: Any) -> BulkResult:
        return BulkResult(list(reversed(super().bulk_docs(db, docs).rows)))


def test_outcomes_follow_ids_not_the_order_of_the_reply() -> None:
    couch = ShuffledReplies()
    couch.ensure_db(DB)
    events = [valid(timestamp=f"2026-03-01T10:0{i}:00Z") for i in range(8)]
    couch.bulk_docs(DB, [{**valid(type="squat"), "_id": e["_id"]} for e in events[:6]])
    out = store(couch, DB, [*events, dict(events[7])])
    assert [w.status for w in out] == ["conflict"] * 6 + ["stored", "stored", "duplicate"]
    assert all(couch.get(DB, w.id)["type"] == "login" for w in out)  # type: ignore[index]
