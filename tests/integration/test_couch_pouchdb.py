"""The CouchDB client against a real PouchDB Server with an admin configured."""

from __future__ import annotations

import pytest

from tests.support.services import CouchServer
from workers.couch.client import CouchClient
from workers.couch.errors import NotFound, Unauthorized
from workers.couch.schema import ensure_schema
from workers.couch.transport import CouchTransport
from workers.settings import Settings
from workers.store.events import events_index

pytestmark = pytest.mark.integration


def test_schema_is_created_once(couch: CouchClient, settings: Settings) -> None:
    first = ensure_schema(couch, settings)
    assert settings.events_db in first and settings.db_name("quarantine") in first
    assert ensure_schema(couch, settings) == []


def test_wrong_credentials_are_refused_even_for_reads(
    couch: CouchClient, settings: Settings, couchdb: CouchServer
) -> None:
    ensure_schema(couch, settings)
    wrong = CouchClient(CouchTransport(couchdb.url, auth=(couchdb.user, "wrong"), retries=0))
    with pytest.raises(Unauthorized):
        wrong.db_info(settings.events_db)
    with pytest.raises(Unauthorized):
        wrong.ensure_db(settings.events_db + "_x")


def test_creating_a_database_needs_admin(couchdb: CouchServer) -> None:
    import requests

    reply = requests.put(f"{couchdb.url}/anonymous_db_attempt", timeout=10)
    assert reply.status_code == 401


def test_bulk_rows_and_upsert_merge(couch: CouchClient, settings: Settings) -> None:
    ensure_schema(couch, settings)
    db = settings.db_name("anomalies")
    result = couch.bulk_docs(db, [{"_id": "a", "score": 0.5}, {"_id": "a", "score": 0.6}])
    assert len(result.written) == 1 and len(result.conflicts) == 1

    def keep_review(old: dict, new: dict) -> dict:  # type: ignore[type-arg]
        return {**new, "review": old.get("review")}

    couch.upsert(db, {"_id": "a", "score": 0.5, "review": "dismissed"})
    couch.upsert(db, {"_id": "a", "score": 0.9, "review": "open"}, merge=keep_review)
    doc = couch.get(db, "a")
    assert doc is not None and doc["score"] == 0.9 and doc["review"] == "dismissed"

    rows = couch.bulk_upsert(
        db, [{"_id": "a", "score": 0.1}, {"_id": "b", "score": 0.2}], merge=keep_review
    )
    assert not rows.failed and not rows.conflicts
    assert couch.get(db, "a")["review"] == "dismissed"  # type: ignore[index]


def test_ids_that_look_like_paths_or_operators_are_data(
    couch: CouchClient, settings: Settings
) -> None:
    ensure_schema(couch, settings)
    db = settings.db_name("runs")
    for odd in ("$gt", "../_all_docs", "a/b", "%2F", "ünï cödé"):
        couch.put(db, {"_id": odd, "v": odd})
        assert couch.get(db, odd)["v"] == odd  # type: ignore[index]
    stored = sorted(d["_id"] for d in couch.iter_all_docs(db))
    assert stored == sorted(["$gt", "../_all_docs", "a/b", "%2F", "ünï cödé"])


def test_changes_paging_with_opaque_seq(couch: CouchClient, settings: Settings) -> None:
    ensure_schema(couch, settings)
    db = settings.events_db
    couch.bulk_docs(db, [{"_id": f"e{i:03d}", "n": i} for i in range(25)])
    seen, since = [], "0"
    while True:
        page = couch.changes(db, since=since, limit=7)
        assert isinstance(page.last_seq, str)
        seen += [r["id"] for r in page.results if not r["id"].startswith("_design/")]
        if not page.results:
            break
        since = page.last_seq
    assert sorted(seen) == [f"e{i:03d}" for i in range(25)]


def test_iter_by_key_pages_through_ties(couch: CouchClient, settings: Settings) -> None:
    ensure_schema(couch, settings)
    field = settings.entity_field
    docs = [
        {"_id": f"x{i:03d}", field: "u1", "timestamp": f"2026-01-01T00:00:{i // 4:02d}.000Z"}
        for i in range(60)
    ] + [{"_id": "other", field: "u2", "timestamp": "2026-01-01T00:00:00.000Z"}]
    couch.bulk_docs(settings.events_db, docs)
    got = list(
        couch.iter_by_key(
            settings.events_db,
            selector={field: "u1"},
            key_field="timestamp",
            sort_prefix=(field,),
            index=events_index(settings),
            page_size=5,
        )
    )
    assert sorted(d["_id"] for d in got) == [f"x{i:03d}" for i in range(60)]
    ranged = list(
        couch.iter_by_key(
            settings.events_db,
            selector={field: "u1"},
            key_field="timestamp",
            start="2026-01-01T00:00:05.000Z",
            end="2026-01-01T00:00:07.000Z",
            sort_prefix=(field,),
            index=events_index(settings),
            page_size=3,
        )
    )
    assert len(ranged) == 8


def test_local_checkpoint_and_attachments(couch: CouchClient, settings: Settings) -> None:
    ensure_schema(couch, settings)
    db = settings.db_name("models")
    assert couch.get_local(db, "checkpoint") is None
    couch.put_local(db, "checkpoint", {"seq": "3-abc"})
    couch.put_local(db, "checkpoint", {"seq": "9-def"})
    assert couch.get_local(db, "checkpoint")["seq"] == "9-def"  # type: ignore[index]
    rev = couch.put(db, {"_id": "m1"})
    payload = bytes(range(256)) * 10
    couch.put_attachment(db, "m1", rev, "model.bin", payload, "application/octet-stream")
    assert couch.get_attachment(db, "m1", "model.bin") == payload
    with pytest.raises(NotFound):
        couch.get_attachment(db, "m1", "missing.bin")
