"""The store layer's operations, one contract on two servers (the twin and PouchDB Server).

Run on `MemoryCouchClient` by `tests/unit/test_couch_contract_twin.py` and on PouchDB Server by
`tests/integration/test_couch_contract.py` (each gives the `client` fixture): registry merges
under a concurrent write, the anomaly merge that keeps a human review, index-backed paging past
CouchDB's default `_find` limit of 25, `_bulk_docs` rows checked one by one, and history summary
parts kept as attachment stubs.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest

from workers.couch.client import BulkResult, CouchClient
from workers.review import review_anomaly
from workers.store import anomalies, notifications, registry, runs, summaries
from workers.store.anomalies import make_anomaly

__all__ = [
    "store_dbs",
    "test_anomaly_merge_keeps_review_and_a_replay_writes_nothing",
    "test_anomaly_queries_page_past_the_default_find_limit",
    "test_bulk_upsert_reports_each_row_and_merges_only_the_conflicted",
    "test_recent_notifications_and_runs_are_not_cut_at_25",
    "test_registry_merges_keep_a_concurrent_writer",
    "test_registry_replayed_range_is_counted_once",
    "test_summary_parts_kept_as_stubs_of_the_revision_read",
]

NOW = datetime(2026, 3, 10, 12, tzinfo=UTC)


@pytest.fixture
def store_dbs(client: CouchClient) -> Iterator[dict[str, str]]:
    """Fresh models, anomalies, notifications and runs databases with the store's indexes."""
    tag = uuid.uuid4().hex[:8]
    names = {k: f"store_{k}_{tag}" for k in ("models", "anomalies", "notifications", "runs")}
    for name in names.values():
        client.ensure_db(name)
    client.ensure_index(
        names["models"], registry.BY_TYPE_ENTITY_FIELDS, name=registry.BY_TYPE_ENTITY
    )
    client.ensure_index(names["anomalies"], anomalies.BY_ENTITY_FIELDS, name=anomalies.BY_ENTITY)
    for name, fields in notifications.INDEXES.items():
        client.ensure_index(names["notifications"], fields, name=name)
    client.ensure_index(names["runs"], ["finished_at"], name=runs.BY_FINISHED)
    yield names
    for name in names.values():
        client.delete_db(name)


@contextmanager
def _racing(client: CouchClient, db: str, doc_id: str, change: dict[str, Any]) -> Iterator[None]:
    """Another writer updates `doc_id` just before the client's first `_bulk_docs`."""
    real = client.bulk_docs
    raced: list[bool] = []

    def bulk_docs(target: str, docs: Any) -> BulkResult:
        if not raced:
            raced.append(True)
            stored = client.get(db, doc_id)
            assert stored is not None
            client.put(db, {**stored, **change})
        return real(target, docs)

    client.bulk_docs = bulk_docs  # type: ignore[method-assign]
    try:
        yield
    finally:
        del client.bulk_docs
    assert raced


def _entity(client: CouchClient, db: str, entity: str) -> dict[str, Any]:
    doc = client.get(db, registry.registry_id(entity))
    assert doc is not None
    return doc


def test_registry_merges_keep_a_concurrent_writer(
    client: CouchClient, store_dbs: dict[str, str]
) -> None:
    db = store_dbs["models"]
    first = "2026-03-10T09:00:00.000Z"
    registry.record_seen(client, db, {"alice": 3}, {"alice": first}, seen_at=first, span="s1")
    # a training lands between the planner's read and its write: both survive
    later = "2026-03-10T10:00:00.000Z"
    with _racing(client, db, registry.registry_id("alice"), {"model_version": 4}):
        registry.record_seen(client, db, {"alice": 2}, {"alice": later}, seen_at=later, span="s2")
    doc = _entity(client, db, "alice")
    assert doc["model_version"] == 4 and doc["events_seen"] == 5
    assert doc["counted_spans"] == ["s1", "s2"]
    assert registry.latest_batch_start(doc) == later and doc["first_seen"] == first
    # a planner pass lands before a training's write: the training keeps its counts
    with _racing(client, db, registry.registry_id("alice"), {"events_seen": 9}):
        _, kept, to_score = registry.record_trained(
            client, db, {"alice": 5}, trained_at=later, keep_first_history=True
        )
    doc = _entity(client, db, "alice")
    assert doc["model_version"] == 5 and doc["events_seen"] == 9
    assert doc["events_since_training"] == 0 and kept == {} and to_score == {}


def test_registry_replayed_range_is_counted_once(
    client: CouchClient, store_dbs: dict[str, str]
) -> None:
    db = store_dbs["models"]
    stamp = "2026-03-10T09:00:00.000Z"
    for _ in range(2):  # the same `_changes` range planned twice
        deferred = registry.record_seen(
            client, db, {"bob": 4}, {"bob": stamp}, seen_at=stamp, span="s1", defer=True
        )
        assert deferred == {"bob"}
    doc = _entity(client, db, "bob")
    assert doc["events_seen"] == 4 and registry.waiting_of(doc) == (stamp, 4)
    registry.record_train_failure(client, db, "bob", "ValueError: poison")
    registry.request_retrain(client, db, "bob", "ModelLoadError: old format")
    doc = _entity(client, db, "bob")
    assert doc["train_failures"] == 1 and doc["needs_retrain"] is True
    assert [e["entity"] for e in registry.iter_entries(client, db)] == ["bob"]


def _anomaly(entity: str, minute: int, score: float, *, now: datetime = NOW) -> dict[str, Any]:
    start = f"2026-03-10T{10 + minute // 60:02d}:{minute % 60:02d}:00.000Z"
    return make_anomaly(
        entity=entity,
        entity_field="user_id",
        detector="combined",
        window_start=start,
        window_end=start,
        event_ids=[f"{entity}-{minute}"],
        score=score,
        threshold=0.9,
        severity="high",
        confidence=1.0,
        reasons=[{"text": "unusual"}],
        model={"id": "m", "version": 1},
        now=now,
    )


def test_anomaly_merge_keeps_review_and_a_replay_writes_nothing(
    client: CouchClient, store_dbs: dict[str, str]
) -> None:
    db = store_dbs["anomalies"]
    doc = _anomaly("alice", 0, 0.95)
    assert not anomalies.upsert_all(client, db, [doc]).failed
    review_anomaly(
        client, db, doc["_id"], "dismissed", by="ana", note="new phone", registry_db=None, now=NOW
    )
    rescored = _anomaly("alice", 0, 0.97, now=datetime(2026, 3, 11, tzinfo=UTC))
    assert rescored["_id"] == doc["_id"]
    result = anomalies.upsert_all(client, db, [rescored])
    assert not result.failed and not result.conflicts
    stored = client.get(db, doc["_id"])
    assert stored is not None
    assert stored["review"]["status"] == "dismissed" and stored["review"]["by"] == "ana"
    assert stored["score"] == 0.97 and stored["created_at"] == doc["created_at"]
    rev = stored["_rev"]
    anomalies.upsert_all(client, db, [rescored])  # a redelivered rescore
    again = client.get(db, doc["_id"])
    assert again is not None and again["_rev"] == rev
    assert anomalies.feedback([again]).dismissed == frozenset({"alice-0"})


def test_anomaly_queries_page_past_the_default_find_limit(
    client: CouchClient, store_dbs: dict[str, str]
) -> None:
    db = store_dbs["anomalies"]
    docs = [_anomaly("alice", m, 0.95) for m in range(60)] + [_anomaly("bob", 0, 0.95)]
    assert not client.bulk_docs(db, docs).failed
    mine = list(anomalies.iter_of_entity(client, db, "alice"))
    assert len(mine) == 60
    assert [d["window_start"] for d in mine] == sorted(d["window_start"] for d in docs[:60])
    part = list(
        anomalies.iter_of_entity(
            client, db, "alice", start=mine[10]["window_start"], end=mine[40]["window_start"]
        )
    )
    assert [d["_id"] for d in part] == [d["_id"] for d in mine[10:40]]
    review_anomaly(client, db, mine[3]["_id"], "confirmed", by="ana", registry_db=None, now=NOW)
    assert [d["_id"] for d in anomalies.reviewed(client, db, "alice")] == [mine[3]["_id"]]


def test_recent_notifications_and_runs_are_not_cut_at_25(
    client: CouchClient, store_dbs: dict[str, str]
) -> None:
    ndb, rdb = store_dbs["notifications"], store_dbs["runs"]
    stamps = [f"2026-03-10T10:{m:02d}:00.000Z" for m in range(40)]
    client.bulk_docs(
        ndb,
        [
            {"_id": f"n{i}", "status": "failed" if i % 2 else "sent", "created_at": s}
            for i, s in enumerate(stamps)
        ],
    )
    client.bulk_docs(
        rdb, [{"_id": runs.run_id(f"t{i}"), "finished_at": s} for i, s in enumerate(stamps)]
    )
    recent = notifications.recent(client, ndb, last=30)
    assert [d["created_at"] for d in recent] == stamps[::-1][:30]
    failed = notifications.recent(client, ndb, last=100, failed_only=True)
    assert len(failed) == 20 and all(d["status"] == "failed" for d in failed)
    assert len(runs.recent_runs(client, rdb, last=40)) == 40


def test_bulk_upsert_reports_each_row_and_merges_only_the_conflicted(
    client: CouchClient, store_dbs: dict[str, str]
) -> None:
    db = store_dbs["models"]
    stamp = "2026-03-10T09:00:00.000Z"
    registry.record_seen(client, db, {"carol": 1}, {"carol": stamp}, seen_at=stamp, span="s1")
    rows = client.bulk_docs(db, [registry.base("carol"), registry.base("dave")]).rows
    assert [(r.id, r.error) for r in rows] == [
        (registry.registry_id("carol"), "conflict"),
        (registry.registry_id("dave"), None),
    ]
    # the upsert merges the conflicted row only; a merge that changes nothing writes nothing
    result = registry.clear_waiting(client, db, {"carol": ("2026-01-01T00:00:00.000Z", 1)})
    assert not result.failed and not result.conflicts
    assert [r.rev for r in result.rows] == [_entity(client, db, "carol")["_rev"]]
    assert _entity(client, db, "carol")["_rev"].startswith("1-")


def test_summary_parts_kept_as_stubs_of_the_revision_read(
    client: CouchClient, store_dbs: dict[str, str]
) -> None:
    """A summary write keeps its sealed part as a stub (PouchDB matches the digest, CouchDB 3 the
    name in the revision read); a stub on any other revision is refused as stale."""
    db = store_dbs["models"]
    first: dict[str, bytes | summaries.AttachmentRef] = {
        summaries.SEALED: b"\x00sealed days",
        summaries.OPEN: b"open days",
    }
    summaries.save(client, db, "alice", first, {"sealed_before": 20524})
    read = summaries.load(client, db, "alice")
    assert read is not None and read.parts == first and read.sealed_before == 20524
    kept = {summaries.SEALED: read.refs[summaries.SEALED], summaries.OPEN: b"open days, more"}
    summaries.save(client, db, "alice", kept, {"sealed_before": 20524}, rev=read.rev)
    again = summaries.load(client, db, "alice")
    assert again is not None and again.rev != read.rev
    assert again.parts == {
        summaries.SEALED: b"\x00sealed days",
        summaries.OPEN: b"open days, more",
    }
    assert again.refs[summaries.SEALED] == read.refs[summaries.SEALED]
    with pytest.raises(summaries.StaleStub):  # the revision read is no longer the current one
        summaries.save(client, db, "alice", kept, {}, rev=read.rev)
    summaries.save(client, db, "bob", {summaries.SEALED: b"s", summaries.OPEN: b"o"}, {})
    bob = summaries.load(client, db, "bob")
    assert bob is not None
    # neither its digest (PouchDB) nor its revpos (CouchDB 3) is that of bob's stored part
    unknown = summaries.AttachmentRef("application/octet-stream", "md5-AAAAAAAAAAAAAAAAAAAAAA==", 9)
    with pytest.raises(summaries.StaleStub):
        summaries.save(
            client, db, "bob", {summaries.SEALED: unknown, summaries.OPEN: b"o"}, {}, rev=bob.rev
        )
