"""The CouchDB twin's `_find` equality index answers exactly what a scan of every document does,
and follows writes (new, updated and deleted documents)."""

from __future__ import annotations

from typing import Any

import pytest

from workers.couch import memory
from workers.couch.mango import MISSING, field_value, matches
from workers.couch.memory import MemoryCouchClient

pytestmark = pytest.mark.unit

DB = "things"


def scanned(client: MemoryCouchClient, query: dict[str, Any]) -> list[dict[str, Any]]:
    """`_find` over every document, as the twin answered before it had an index."""
    saved = memory._candidates
    memory._candidates = lambda db, selector: [
        i for i in sorted(db.docs) if not i.startswith("_design/")
    ]
    try:
        return client.find_page(DB, query)[0]
    finally:
        memory._candidates = saved


def check(client: MemoryCouchClient, selector: dict[str, Any], **extra: Any) -> list[Any]:
    query = {"selector": selector, "limit": 1000, **extra}
    found = client.find_page(DB, query)[0]
    assert found == scanned(client, query)
    return [d["_id"] for d in found]


@pytest.fixture
def client() -> MemoryCouchClient:
    c = MemoryCouchClient()
    c.ensure_db(DB)
    docs: list[dict[str, Any]] = [
        {"_id": "a", "user": "alice", "n": 1, "t": "2026-01-02"},
        {"_id": "b", "user": "bob", "n": 1.0, "t": "2026-01-01"},
        {"_id": "c", "user": "alice", "n": True, "t": "2026-01-01"},
        {"_id": "d", "user": ["alice"], "n": None},
        {"_id": "e", "user": {"name": "alice"}, "n": 2},
        {"_id": "f", "n": 3, "nested": {"k": "v"}},
        {"_id": "_design/x", "user": "alice"},
    ]
    c.bulk_docs(DB, docs)
    return c


def test_equality_selectors_match_a_full_scan(client: MemoryCouchClient) -> None:
    assert check(client, {"user": "alice"}) == ["a", "c"]
    assert check(client, {"n": 1}) == ["a", "b"]  # 1 and 1.0 collate as one number
    assert check(client, {"n": True}) == ["c"]  # true is not the number 1
    assert check(client, {"n": None}) == ["d"]
    assert check(client, {"user": "carol"}) == []
    assert check(client, {"nested.k": "v"}) == ["f"]
    assert check(client, {"user": "alice", "t": {"$gte": "2026-01-02"}}) == ["a"]
    assert check(client, {"user": "alice", "t": {"$gt": None}}, sort=["t"]) == ["c", "a"]
    assert check(client, {"user": {"$in": ["alice", "bob"]}}) == ["a", "b", "c"]
    assert check(client, {"$and": [{"user": "bob"}]}) == ["b"]
    assert check(client, {}) == ["a", "b", "c", "d", "e", "f"]


def test_the_index_follows_writes(client: MemoryCouchClient) -> None:
    assert check(client, {"user": "alice"}) == ["a", "c"]
    doc = client.find_page(DB, {"selector": {"_id": "a"}, "limit": 1})[0][0]
    client.put(DB, {**doc, "user": "bob"})
    client.bulk_docs(DB, [{"_id": "g", "user": "alice"}])
    assert check(client, {"user": "alice"}) == ["c", "g"]
    assert check(client, {"user": "bob"}) == ["a", "b"]
    c = client.find_page(DB, {"selector": {"_id": "c"}, "limit": 1})[0][0]
    client.delete(DB, "c", c["_rev"])
    assert check(client, {"user": "alice"}) == ["g"]


def test_scanned_reference_is_every_matching_document(client: MemoryCouchClient) -> None:
    docs = scanned(client, {"selector": {"user": "alice"}, "limit": 100})
    assert all(matches(d, {"user": "alice"}) for d in docs)
    assert all(field_value(d, "user") is not MISSING for d in docs)


def test_reads_are_deep_copies_equal_to_a_json_round_trip(client: MemoryCouchClient) -> None:
    nested = {"_id": "h", "user": "alice", "a": [1, 2.5, {"b": [None, True, "x"]}], "c": {}}
    client.bulk_docs(DB, [nested])
    stored = client.transport.dbs[DB].docs["h"]  # type: ignore[attr-defined]
    read = client.find_page(DB, {"selector": {"_id": "h"}, "limit": 1})[0][0]
    assert read == memory._roundtrip(stored) and read is not stored
    read["a"][2]["b"].append("changed")
    read["c"]["new"] = 1
    assert client.find_page(DB, {"selector": {"_id": "h"}, "limit": 1})[0][0] == stored
    assert stored["a"][2]["b"] == [None, True, "x"] and stored["c"] == {}


def scanned_changes(db: Any, since: int, limit: int) -> tuple[list[tuple[int, str]], int]:
    """A `_changes` page as the twin built it before it kept the feed sorted: every seq after
    `since`, sorted, then the page; and how many are pending after it."""
    changed = sorted((q, i) for i, q in db.seqs.items() if q > since)
    return changed[:limit], len(changed) - len(changed[:limit])


def page_of(client: MemoryCouchClient, since: str, limit: int) -> tuple[Any, int]:
    db = client.transport.dbs[DB]  # type: ignore[attr-defined]
    page = client.changes(DB, since=since, limit=limit)
    got = [(int(r["seq"].split("-")[0]), r["id"]) for r in page.results]
    assert (got, page.pending) == scanned_changes(db, int(since.split("-")[0]), limit)
    return page, len(got)


def test_changes_pages_follow_writes_in_seq_order(client: MemoryCouchClient) -> None:
    doc = client.find_page(DB, {"selector": {"_id": "b"}, "limit": 1})[0][0]
    client.put(DB, {**doc, "user": "carol"})  # b moves to the end of the feed
    first, _ = page_of(client, "0", 3)
    client.bulk_docs(DB, [{"_id": "0", "user": "zed"}])  # writes between two pages
    c = client.find_page(DB, {"selector": {"_id": "c"}, "limit": 1})[0][0]
    client.delete(DB, "c", c["_rev"])
    second, n = page_of(client, first.last_seq, 2)
    rest, _ = page_of(client, second.last_seq, 100)
    assert [r["id"] for r in rest.results][-3:] == ["b", "0", "c"]
    assert rest.results[-1].get("deleted") is True and rest.pending == 0
    tail, n = page_of(client, rest.last_seq, 10)
    assert n == 0 and tail.pending == 0
