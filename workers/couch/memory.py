"""In-memory twins of CouchDB 3 and Redis, for simulations (`couchwatch evaluate`) and tests.

`MemoryCouchClient` is the real `CouchClient` over `MemoryTransport`, a transport that answers
the HTTP routes the client sends (`PUT /db`, `_security`, `_bulk_docs`, `_find`, `_changes`,
`_all_docs`, attachments, `_local` documents) the way CouchDB 3 does: revisions `N-hash`, 409
conflicts (per row in `_bulk_docs`), deleted documents as tombstones in `_changes`, `seq` as an
opaque string, `_find` with a default limit of 25 and bookmark paging that ends with an empty page,
attachment stubs matched by name (and `revpos` when given) in the revision written on, else 412
`missing_stub`.
Every domain method (upserts and their merge loop, key paging) is the client's own code.
`memory_redis()` is a `fakeredis` server with Lua, so `eval` of the release script runs.
The contract tests (tests/integration/test_couch_contract.py) hold it to PouchDB Server.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import redis

from workers.couch.client import CouchClient
from workers.couch.mango import MISSING, collate, fail, field_value, matches
from workers.couch.transport import CouchTransport

Doc = dict[str, Any]
FIND_DEFAULT_LIMIT = 25
_SEQ_TAIL = "g1AAAAB1eJzLYWBgYMpgTmHgz8tPSTV0MDQy1zMAQsMcoEwiQ5L8____szKYE5lzgQLsKSmG5kmWxphK"


@dataclass
class _Database:
    docs: dict[str, Doc] = field(default_factory=dict)  # id -> stored body (with _rev)
    deleted: dict[str, str] = field(default_factory=dict)  # id -> tombstone rev
    seqs: dict[str, int] = field(default_factory=dict)  # id -> seq of its last change
    attachments: dict[str, dict[str, Doc]] = field(default_factory=dict)
    local: dict[str, Doc] = field(default_factory=dict)
    seq: int = 0
    # `_find`'s equality index, rebuilt after any write: field -> collation key -> ids in id
    # order (CouchDB serves these selectors from a Mango index, not a scan of every document)
    eq_index: dict[str, dict[Any, list[str]]] = field(default_factory=dict)
    eq_index_seq: int = -1
    changes: list[tuple[int, str]] = field(default_factory=list)  # (seq, id), sorted
    changes_seq: int = -1  # db.seq when `changes` was sorted
    # CouchDB 3 creates databases admin-only (`[couchdb] default_security = admin_only`)
    security: Doc = field(
        default_factory=lambda: {"members": {"roles": ["_admin"]}, "admins": {"roles": ["_admin"]}}
    )


def _seq_text(n: int) -> str:
    return f"{n}-{_SEQ_TAIL}"


def _seq_number(since: Any) -> int:
    text = str(since)
    if text == "now":
        raise ValueError("since=now is not supported by the twin")
    return int(text.split("-", 1)[0] or 0)


class MemoryTransport(CouchTransport):
    """A `CouchTransport` whose server is a dict in this process (no network, no retries)."""

    def __init__(self) -> None:
        super().__init__("memory://couchwatch", auth=("memory", "memory"), retries=0)
        self.dbs: dict[str, _Database] = {}

    def _send(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        json: Any,
        data: bytes | None,
        headers: Mapping[str, str] | None,
        raw: bool,
    ) -> Any:
        params = dict(params or {})
        body: Any = _roundtrip(json) if json is not None else {}
        parts = [unquote(p) for p in path.split("/") if p]
        if not parts:
            return {"couchdb": "Welcome", "version": "3-memory"}
        if parts == ["_session"]:
            return {"ok": True, "userCtx": {"name": "memory", "roles": ["_admin"]}}
        db_name, rest = parts[0], parts[1:]
        if not rest:
            return self._database(method, db_name)
        db = self.dbs.get(db_name)
        if db is None:
            raise fail(404, "not_found", "Database does not exist.")
        head = rest[0]
        if head == "_security":
            if method == "PUT":
                db.security = body
                return {"ok": True}
            return _copy(db.security)
        if head == "_index":
            return {"result": "created", "id": f"_design/{body.get('ddoc')}", "name": body["name"]}
        if head == "_bulk_docs":
            return [self._write(db, d, None) for d in body["docs"]]
        if head == "_all_docs":
            return self._all_docs(db, params, body)
        if head == "_find":
            return self._find(db, body)
        if head == "_changes":
            return self._changes(db, params)
        if head in ("_local", "_design"):
            doc_id, rest = f"{head}/{rest[1]}", rest[2:]
        else:
            doc_id, rest = head, rest[1:]
        if head == "_local":
            return self._local(db, method, doc_id, body)
        if rest:
            return self._attachment(db, method, doc_id, rest[0], params, data, headers)
        if method == "GET":
            return self._get(db, doc_id, attachments=params.get("attachments") == "true")
        if method == "PUT":
            return _raise_row(self._write(db, {**body, "_id": doc_id}, body.get("_rev")))
        if method == "DELETE":
            self._get(db, doc_id, attachments=False)  # 404 when missing or deleted
            tomb = {"_id": doc_id, "_rev": params.get("rev"), "_deleted": True}
            return _raise_row(self._write(db, tomb, params.get("rev")))
        raise fail(405, "method_not_allowed", f"{method} on a document")

    # -- databases and documents ----------------------------------------------------------

    def _database(self, method: str, name: str) -> Any:
        if method == "PUT":
            if name in self.dbs:
                raise fail(412, "file_exists", "The database could not be created.")
            self.dbs[name] = _Database()
            return {"ok": True}
        if name not in self.dbs:
            raise fail(404, "not_found", "Database does not exist.")
        if method == "DELETE":
            del self.dbs[name]
            return {"ok": True}
        db = self.dbs[name]
        return {
            "db_name": name,
            "doc_count": len(db.docs),
            "doc_del_count": len(db.deleted),
            "update_seq": _seq_text(db.seq),
        }

    def _get(self, db: _Database, doc_id: str, *, attachments: bool) -> Doc:
        stored = db.docs.get(doc_id)
        if stored is None:
            reason = "deleted" if doc_id in db.deleted else "missing"
            raise fail(404, "not_found", reason)
        doc = _copy(stored)
        atts = db.attachments.get(doc_id)
        if atts:
            doc["_attachments"] = {
                name: _attachment_stub(a, inline=attachments) for name, a in atts.items()
            }
        return doc

    def _write(self, db: _Database, doc: Doc, rev: str | None) -> Doc:
        """Store one document as `_bulk_docs`/`PUT` do; return the reply row."""
        doc_id = str(doc.get("_id") or _md5(json.dumps(doc).encode()).hexdigest())
        rev = rev if rev is not None else doc.get("_rev")
        current = db.docs.get(doc_id)
        current_rev = current["_rev"] if current else db.deleted.get(doc_id)
        if current is not None and rev != current_rev:
            return {"id": doc_id, "error": "conflict", "reason": "Document update conflict."}
        if current is None and rev is not None and rev != current_rev:
            return {"id": doc_id, "error": "conflict", "reason": "Document update conflict."}
        generation = int(current_rev.split("-", 1)[0]) + 1 if current_rev else 1
        body = {k: v for k, v in doc.items() if not k.startswith("_")}
        deleted = bool(doc.get("_deleted"))
        digest = _md5(json.dumps([current_rev, deleted, body], sort_keys=True).encode()).hexdigest()
        new_rev = f"{generation}-{digest}"
        stubs = doc.get("_attachments") or {}
        stored = db.attachments.get(doc_id, {}) if current is not None else {}
        for name, att in stubs.items():  # a stub keeps the named attachment of this revision
            if isinstance(att, Mapping) and att.get("stub") and "data" not in att:
                found = stored.get(name)
                if found is None or att.get("revpos") not in (None, found["revpos"]):
                    raise fail(
                        412, "missing_stub", f"Invalid attachment stub in {doc_id} for {name}"
                    )
        kept = {n: a for n, a in stored.items() if n in stubs}
        for name, att in stubs.items():  # inline attachments (base64 `data`) are stored too
            if isinstance(att, Mapping) and "data" in att:
                payload = base64.b64decode(att["data"])
                kept[name] = {
                    "content_type": att.get("content_type", "application/octet-stream"),
                    "data": payload,
                    "digest": "md5-" + base64.b64encode(_md5(payload).digest()).decode(),
                    "revpos": generation,
                }
        db.attachments.pop(doc_id, None)
        if deleted:
            db.docs.pop(doc_id, None)
            db.deleted[doc_id] = new_rev
        else:
            db.deleted.pop(doc_id, None)
            db.docs[doc_id] = {"_id": doc_id, "_rev": new_rev, **body}
            if kept:
                db.attachments[doc_id] = kept
        db.seq += 1
        db.seqs[doc_id] = db.seq
        return {"ok": True, "id": doc_id, "rev": new_rev}

    def _local(self, db: _Database, method: str, doc_id: str, body: Doc) -> Any:
        if method == "GET":
            if doc_id not in db.local:
                raise fail(404, "not_found", "missing")
            return _copy(db.local[doc_id])
        if method == "PUT":
            current = db.local.get(doc_id)
            if current is not None and body.get("_rev") != current["_rev"]:
                raise fail(409, "conflict", "Document update conflict.")
            n = int(current["_rev"].split("-")[1]) + 1 if current else 1
            db.local[doc_id] = {**body, "_id": doc_id, "_rev": f"0-{n}"}
            return {"ok": True, "id": doc_id, "rev": f"0-{n}"}
        if method == "DELETE":
            db.local.pop(doc_id, None)
            return {"ok": True}
        raise fail(405, "method_not_allowed", method)

    def _attachment(
        self,
        db: _Database,
        method: str,
        doc_id: str,
        name: str,
        params: Mapping[str, Any],
        data: bytes | None,
        headers: Mapping[str, str] | None,
    ) -> Any:
        if method == "GET":
            att = db.attachments.get(doc_id, {}).get(name)
            if doc_id not in db.docs or att is None:
                raise fail(404, "not_found", "Document is missing attachment")
            return bytes(att["data"])
        if method != "PUT":
            raise fail(405, "method_not_allowed", method)
        current = db.docs.get(doc_id)
        if current is None or params.get("rev") != current["_rev"]:
            raise fail(409, "conflict", "Document update conflict.")
        payload = bytes(data or b"")
        atts = dict(db.attachments.get(doc_id, {}))
        stubs = {n: {"stub": True} for n in atts}
        row = self._write(db, {**current, "_attachments": stubs}, None)  # `name` set below
        atts[name] = {
            "content_type": (headers or {}).get("Content-Type", "application/octet-stream"),
            "data": payload,
            "digest": "md5-" + base64.b64encode(_md5(payload).digest()).decode(),
            "revpos": int(str(row["rev"]).split("-")[0]),
        }
        db.attachments[doc_id] = atts
        return row

    # -- views and queries ----------------------------------------------------------------

    def _all_docs(self, db: _Database, params: Mapping[str, Any], body: Doc | None) -> Doc:
        include = params.get("include_docs") == "true"
        if body and "keys" in body:
            rows = []
            for key in body["keys"]:
                if key in db.docs:
                    doc = db.docs[key]
                    row: Doc = {"id": key, "key": key, "value": {"rev": doc["_rev"]}}
                    if include:
                        row["doc"] = self._get(db, key, attachments=False)
                    rows.append(row)
                elif key in db.deleted:
                    rows.append(
                        {
                            "id": key,
                            "key": key,
                            "doc": None,
                            "value": {"rev": db.deleted[key], "deleted": True},
                        }
                    )
                else:
                    rows.append({"key": key, "error": "not_found"})
            return {"total_rows": len(db.docs), "rows": rows}
        ids = sorted(db.docs)
        if "startkey" in params:
            start = json.loads(params["startkey"])
            ids = [i for i in ids if i >= start]
        limit = int(params.get("limit", len(ids)))
        rows = []
        for doc_id in ids[:limit]:
            row = {"id": doc_id, "key": doc_id, "value": {"rev": db.docs[doc_id]["_rev"]}}
            if include:
                row["doc"] = self._get(db, doc_id, attachments=False)
            rows.append(row)
        return {"total_rows": len(db.docs), "offset": 0, "rows": rows}

    def _find(self, db: _Database, query: Doc) -> Doc:
        selector = query.get("selector") or {}
        sort = [
            next(iter(s.items())) if isinstance(s, dict) else (s, "asc")
            for s in query.get("sort", [])
        ]
        docs = [
            d
            for doc_id in _candidates(db, selector)
            if matches(d := db.docs[doc_id], selector)
            and all(field_value(d, f) is not MISSING for f, _ in sort)
        ]
        if sort:
            descending = sort[0][1] == "desc"
            docs.sort(
                key=lambda d: tuple(collate(field_value(d, f)) for f, _ in sort), reverse=descending
            )
        offset = _bookmark_offset(query.get("bookmark"))
        limit = int(query.get("limit", FIND_DEFAULT_LIMIT))
        page = docs[offset : offset + limit]
        fields = query.get("fields")
        out = []
        for d in page:
            doc = _copy(d)
            if fields:
                doc = {f: field_value(doc, f) for f in fields if field_value(doc, f) is not MISSING}
            out.append(doc)
        return {"docs": out, "bookmark": _bookmark(offset + len(page))}

    def _changes(self, db: _Database, params: Mapping[str, Any]) -> Doc:
        since = _seq_number(params.get("since", "0"))
        include = params.get("include_docs") == "true"
        limit = int(params["limit"]) if "limit" in params else None
        if db.changes_seq != db.seq:
            db.changes, db.changes_seq = sorted((q, i) for i, q in db.seqs.items()), db.seq
        first = bisect.bisect_right(db.changes, since, key=lambda change: change[0])
        changed = [(s, i) for s, i in db.changes[first:] if not i.startswith("_local/")]
        page = changed[:limit] if limit is not None else changed
        results = []
        for seq, doc_id in page:
            deleted = doc_id in db.deleted
            rev = db.deleted[doc_id] if deleted else db.docs[doc_id]["_rev"]
            row: Doc = {"seq": _seq_text(seq), "id": doc_id, "changes": [{"rev": rev}]}
            if deleted:
                row["deleted"] = True
            if include:
                row["doc"] = (
                    {"_id": doc_id, "_rev": rev, "_deleted": True}
                    if deleted
                    else self._get(db, doc_id, attachments=False)
                )
            results.append(row)
        last = page[-1][0] if page else max(since, 0)
        return {
            "results": results,
            "last_seq": _seq_text(last),
            "pending": len(changed) - len(page),
        }


_SCALARS = (str, int, float, bool, type(None))


def _candidates(db: _Database, selector: Doc) -> list[str]:
    """Ids (in id order, no design documents) of the documents that can match `selector`: all
    of them, or those whose value of the selector's first plain-equality field is equal."""
    name = next(
        (k for k, v in selector.items() if not k.startswith("$") and isinstance(v, _SCALARS)),
        None,
    )
    if name is None:
        return [i for i in sorted(db.docs) if not i.startswith("_design/")]
    if db.eq_index_seq != db.seq:
        db.eq_index, db.eq_index_seq = {}, db.seq
    index = db.eq_index.get(name)
    if index is None:
        index = db.eq_index[name] = {}
        for doc_id in sorted(db.docs):
            value = field_value(db.docs[doc_id], name)
            if isinstance(value, _SCALARS) and not doc_id.startswith("_design/"):
                index.setdefault(collate(value), []).append(doc_id)
    return index.get(collate(selector[name]), [])


def _md5(data: bytes) -> Any:
    return hashlib.md5(data, usedforsecurity=False)  # revisions and digests, not security


def _attachment_stub(att: Doc, *, inline: bool) -> Doc:
    stub: Doc = {
        "content_type": att["content_type"],
        "digest": att["digest"],
        "revpos": att["revpos"],
    }
    if inline:
        stub["data"] = base64.b64encode(att["data"]).decode()
    else:
        stub.update({"length": len(att["data"]), "stub": True})
    return stub


def _bookmark(offset: int) -> str:
    return "g1AAAA" + base64.urlsafe_b64encode(str(offset).encode()).decode()


def _bookmark_offset(bookmark: Any) -> int:
    if not bookmark or bookmark == "nil":
        return 0
    return int(base64.urlsafe_b64decode(str(bookmark)[6:].encode()).decode())


def _raise_row(row: Doc) -> Doc:
    if row.get("error") == "conflict":
        raise fail(409, "conflict", "Document update conflict.")
    return row


def _copy(value: Any) -> Any:
    """A copy of a stored value, which came in through `_roundtrip` (dicts, lists, scalars):
    what `_roundtrip` would return for it, without encoding and decoding JSON."""
    kind = type(value)
    if kind is dict:
        return {k: _copy(v) for k, v in value.items()}
    if kind is list:
        return [_copy(v) for v in value]
    return value


def _roundtrip(value: Any) -> Any:
    """What the value becomes once sent as JSON and read back (tuples → lists, copies)."""
    return json.loads(json.dumps(value, allow_nan=False))


class MemoryCouchClient(CouchClient):
    """The real `CouchClient` over an in-memory CouchDB 3 twin (one server per instance)."""

    def __init__(self) -> None:
        super().__init__(MemoryTransport())


def memory_redis() -> redis.Redis:
    """An in-memory Redis (fakeredis, with Lua for `eval`), private to the caller."""
    import fakeredis

    client: redis.Redis = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    return client
