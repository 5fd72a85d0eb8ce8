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
