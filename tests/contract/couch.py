"""One contract, two servers: the CouchDB behaviour couchwatch relies on, written once.

`tests/unit/test_couch_contract_twin.py` runs every test here on `MemoryCouchClient` (the
in-memory CouchDB 3 twin, workers/couch/memory.py) and `tests/integration/
test_couch_contract.py` on PouchDB Server, each by giving the `client` fixture. The twin is what
`couchwatch evaluate` and the unit suite run the fleet on, so it is held to: revisions, conflicts
(per row in `_bulk_docs`), deleted documents, upsert merges, Mango `_find` (operators, sort,
limit, bookmarks), key paging, `_all_docs`, `_changes` with opaque string seqs, `_local`
documents and attachments (inline and standalone). `tests/contract/store.py` holds the
store-level operations to the same two servers.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from workers.couch.client import CouchClient
from workers.couch.errors import Conflict, DatabaseExists, NotFound
from workers.couch.memory import MemoryCouchClient, memory_redis
from workers.event_store import SALT_DOC, id_salt
from workers.fleet import release_if_owner

__all__ = [
    "db",
    "test_a_local_document_is_created_once",
    "test_all_docs_and_changes_with_opaque_string_seqs",
    "test_attachments_standalone_and_inline",
    "test_bulk_docs_reports_conflicts_per_row",
    "test_database_created_once_and_missing_db_is_not_found",
    "test_find_operators_sort_default_limit_and_bookmarks",
    "test_ids_that_look_like_paths_or_operators_are_data",
    "test_iter_by_key_pages_through_equal_keys",
    "test_local_documents_are_not_changes",
    "test_redis_twin_runs_the_release_script",
    "test_revisions_conflicts_and_deletes",
    "test_upsert_and_bulk_upsert_merge_with_what_is_there",
]


@pytest.fixture
def db(client: CouchClient) -> Iterator[str]:
    name = f"contract_{uuid.uuid4().hex[:10]}"
    assert client.ensure_db(name) is True
    yield name
    client.delete_db(name)


def test_database_created_once_and_missing_db_is_not_found(client: CouchClient, db: str) -> None:
    assert client.ensure_db(db) is False
    with pytest.raises(DatabaseExists):
        client.transport.request("PUT", f"/{db}")
    with pytest.raises(NotFound):
        client.db_info(f"{db}_missing")
    assert client.get(db, "missing") is None


def test_revisions_conflicts_and_deletes(client: CouchClient, db: str) -> None:
    rev1 = client.put(db, {"_id": "a", "v": 1})
    assert rev1.startswith("1-")
    with pytest.raises(Conflict):
        client.put(db, {"_id": "a", "v": 2})
    rev2 = client.put(db, {"_id": "a", "_rev": rev1, "v": 2})
    assert rev2.startswith("2-")
    doc = client.get(db, "a")
    assert doc is not None and doc["v"] == 2 and doc["_rev"] == rev2
    client.delete(db, "a", rev2)
    assert client.get(db, "a") is None
    assert client.get_many(db, ["a"]) == {}
    assert client.put(db, {"_id": "a", "v": 3}).startswith("4-")  # over the tombstone


def test_bulk_docs_reports_conflicts_per_row(client: CouchClient, db: str) -> None:
    client.put(db, {"_id": "a", "v": 1})
    result = client.bulk_docs(db, [{"_id": "a", "v": 2}, {"_id": "b", "v": 1}])
    assert [r.id for r in result.conflicts] == ["a"]
    assert [r.id for r in result.written] == ["b"]
    assert result.written[0].rev is not None and result.written[0].rev.startswith("1-")


def test_upsert_and_bulk_upsert_merge_with_what_is_there(client: CouchClient, db: str) -> None:
    client.put(db, {"_id": "a", "n": 1, "keep": "x"})

    def add(old: dict[str, object], new: dict[str, object]) -> dict[str, object]:
        return {**old, "n": int(old["n"]) + int(new["n"])}  # type: ignore[call-overload]

    client.upsert(db, {"_id": "a", "n": 2}, merge=add)
    result = client.bulk_upsert(db, [{"_id": "a", "n": 3}, {"_id": "b", "n": 1}], merge=add)
    assert not result.failed and not result.conflicts
    docs = client.get_many(db, ["a", "b", "c"])
    assert docs["a"]["n"] == 6 and docs["a"]["keep"] == "x" and docs["b"]["n"] == 1
    assert set(docs) == {"a", "b"}
    rev = docs["a"]["_rev"]
    assert client.upsert(db, {"_id": "a", "n": 0}, merge=lambda old, new: dict(old)) == rev


def test_ids_that_look_like_paths_or_operators_are_data(client: CouchClient, db: str) -> None:
    """Was tests/integration/test_couch_pouchdb.py's: ids are quoted into URLs, never parsed."""
    odd = ["$gt", "../_all_docs", "a/b", "%2F", "ünï cödé"]
    for doc_id in odd:
        client.put(db, {"_id": doc_id, "v": doc_id})
        stored = client.get(db, doc_id)
        assert stored is not None and stored["v"] == doc_id
    assert sorted(d["_id"] for d in client.iter_all_docs(db)) == sorted(odd)


def test_find_operators_sort_default_limit_and_bookmarks(client: CouchClient, db: str) -> None:
    client.ensure_index(db, ["kind", "t"], name="by-kind-t")
    docs = [
        {"_id": f"d{i:02d}", "kind": "e" if i % 3 else "x", "t": 100 - i, "tag": i % 2}
        for i in range(60)
    ]
    docs.append({"_id": "no-t", "kind": "e"})
    assert not client.bulk_docs(db, docs).failed
    query = {"selector": {"kind": "e", "t": {"$gt": None}}, "sort": [{"kind": "asc"}, {"t": "asc"}]}
    page = client.transport.request("POST", f"/{db}/_find", json=query)
    # without a limit CouchDB 3 returns 25 and PouchDB Server all 40: the twin follows CouchDB 3
    # (the stricter one), and the client refuses a query without its own limit
    assert len(page["docs"]) == (25 if isinstance(client, MemoryCouchClient) else 40)
    with pytest.raises(ValueError, match="limit"):
        client.find_page(db, query)
    picked_and_paged(client, db)
    if isinstance(client, MemoryCouchClient):  # PouchDB Server ignores bookmarks (it restarts
        bookmark_pages(client, db, query, docs)  # at the first page); couchwatch pages on keys


def bookmark_pages(
    client: CouchClient, db: str, query: dict[str, Any], docs: list[dict[str, Any]]
) -> None:
    """CouchDB 3 bookmarks: each page goes on after the last, and the end is an empty page."""
    seen: list[int] = []
    bookmark = None
    for _ in range(10):
        body = {**query, "limit": 15, **({"bookmark": bookmark} if bookmark else {})}
        found, bookmark = client.find_page(db, body)
        if not found:
            break
        seen += [d["t"] for d in found]
    else:
        pytest.fail("bookmark pages never ended with an empty page")
    assert seen == sorted(d["t"] for d in docs if d["kind"] == "e" and "t" in d)


def picked_and_paged(client: CouchClient, db: str) -> None:
    picked, _ = client.find_page(
        db,
        {
            "selector": {
                "kind": "e",
                "t": {"$gte": 50, "$lt": 60},
                "tag": {"$in": [1]},
                "_id": {"$exists": True},
            },
            "fields": ["_id", "t"],
            "limit": 100,
        },
    )
    assert sorted(d["t"] for d in picked) == [51, 53, 57, 59]
    assert all(set(d) == {"_id", "t"} for d in picked)
    lte, _ = client.find_page(db, {"selector": {"t": {"$lte": 42}}, "limit": 100})
    assert sorted(d["t"] for d in lte) == list(range(41, 43))


def test_iter_by_key_pages_through_equal_keys(client: CouchClient, db: str) -> None:
    client.ensure_index(db, ["u", "ts"], name="by-u-ts")
    docs = [
        {"_id": f"e{i:03d}", "u": "u1", "ts": f"2026-01-0{1 + i // 20}T00:00:00Z"}
        for i in range(70)
    ]
    docs += [{"_id": "other", "u": "u2", "ts": "2026-01-01T00:00:00Z"}]
    client.bulk_docs(db, docs)
    got = list(
        client.iter_by_key(
            db,
            selector={"u": "u1"},
            key_field="ts",
            sort_prefix=("u",),
            index=("by-u-ts", "by-u-ts"),
            page_size=7,
        )
    )
    assert sorted(d["_id"] for d in got) == [f"e{i:03d}" for i in range(70)]
    assert [d["ts"] for d in got] == sorted(d["ts"] for d in got)
    bounded = list(
        client.iter_by_key(
            db,
            selector={"u": "u1"},
            key_field="ts",
            start="2026-01-02T00:00:00Z",
            end="2026-01-04T00:00:00Z",
            sort_prefix=("u",),
            page_size=5,
        )
    )
    assert len(bounded) == 40


def test_all_docs_and_changes_with_opaque_string_seqs(client: CouchClient, db: str) -> None:
    client.bulk_docs(db, [{"_id": f"c{i}", "i": i} for i in range(7)])
    assert [d["_id"] for d in client.iter_all_docs(db, page_size=3)] == [f"c{i}" for i in range(7)]
    first = client.changes(db, since="0", limit=4)
    assert isinstance(first.last_seq, str) and len(first.results) == 4
    assert all(isinstance(r["seq"], str | int) for r in first.results)
    assert all(r["doc"]["_id"] == r["id"] for r in first.results)
    rest = client.changes(db, since=first.last_seq, limit=100)
    assert {r["id"] for r in first.results} | {r["id"] for r in rest.results} == {
        f"c{i}" for i in range(7)
    }
    doc = client.get(db, "c0")
    assert doc is not None
    client.delete(db, "c0", doc["_rev"])
    after = client.changes(db, since=rest.last_seq, limit=100, include_docs=False)
    assert [(r["id"], r.get("deleted")) for r in after.results] == [("c0", True)]
    assert "doc" not in after.results[0]
    empty = client.changes(db, since=after.last_seq, limit=100)
    assert empty.results == [] and isinstance(empty.last_seq, str)


def test_local_documents_are_not_changes(client: CouchClient, db: str) -> None:
    assert client.get_local(db, "cp") is None
    client.put_local(db, "cp", {"seq": "1-abc"})
    client.put_local(db, "cp", {"seq": "2-abc"})
    local = client.get_local(db, "cp")
    assert local is not None and local["seq"] == "2-abc"
    assert client.changes(db, since="0").results == []
    assert list(client.iter_all_docs(db)) == []


def test_a_local_document_is_created_once(client: CouchClient, db: str) -> None:
    """`id_salt` (workers/event_store.py) relies on it: a PUT without `_rev` over an existing
    `_local` document is a conflict, so two writers racing for the salt agree on the first."""
    salt = id_salt(client, db)
    with pytest.raises(Conflict):
        client.put(db, {"_id": f"_local/{SALT_DOC}", "salt": "another"})
    assert id_salt(client, db) == salt and len(salt) == 64


def test_attachments_standalone_and_inline(client: CouchClient, db: str) -> None:
    rev = client.put(db, {"_id": "m", "v": 1})
    rev2 = client.put_attachment(db, "m", rev, "model.bin", b"\x00payload", "application/x-x")
    assert rev2.startswith("2-")
    assert client.get_attachment(db, "m", "model.bin") == b"\x00payload"
    inline = client.get(db, "m", attachments=True)
    assert inline is not None
    assert base64.b64decode(inline["_attachments"]["model.bin"]["data"]) == b"\x00payload"
    stub = client.get(db, "m")
    assert stub is not None and stub["_attachments"]["model.bin"].get("stub") is True
    data = base64.b64encode(b"inline bytes").decode()
    client.bulk_docs(
        db,
        [
            {
                "_id": "n",
                "_attachments": {
                    "a.bin": {"content_type": "application/octet-stream", "data": data}
                },
            }
        ],
    )
    assert client.get_attachment(db, "n", "a.bin") == b"inline bytes"
    with pytest.raises(NotFound):
        client.get_attachment(db, "n", "missing.bin")


def test_redis_twin_runs_the_release_script() -> None:
    r = memory_redis()
    assert r.set("lock", "me", nx=True, ex=30)
    assert not r.set("lock", "you", nx=True, ex=30)
    release_if_owner(r, "lock", "you")
    assert r.get("lock") == b"me"
    release_if_owner(r, "lock", "me")
    assert r.get("lock") is None
