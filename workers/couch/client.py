"""The CouchDB domain API couchwatch uses, written to Apache CouchDB 3's behaviour.

- `seq` values are opaque strings: stored and sent back as they came, never compared.
- Every `_find` and `_all_docs` call carries an explicit `limit`; results are paged with a
  stable key (never `skip` loops, never a server default).
- Every row of a `_bulk_docs` reply is checked.
- Deterministic-`_id` upserts treat 409 as "already there" and merge.
- Authentication is required: a client without credentials refuses to start.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from workers.couch.errors import Conflict, DatabaseExists, NotFound, Unauthorized
from workers.couch.transport import CouchTransport, db_path, doc_path, path_segment
from workers.settings import Settings

Doc = dict[str, Any]
Merge = Callable[[Doc, Doc], Doc]

DEFAULT_PAGE_SIZE = 500
MAX_UPSERT_ATTEMPTS = 5


@dataclass(frozen=True)
class BulkRow:
    """One row of a `_bulk_docs` reply."""

    id: str
    rev: str | None = None
    error: str | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.rev is not None

    @property
    def conflict(self) -> bool:
        return self.error == "conflict"


@dataclass
class BulkResult:
    """All rows of a `_bulk_docs` reply, split by outcome."""

    rows: list[BulkRow] = field(default_factory=list)

    @property
    def written(self) -> list[BulkRow]:
        return [r for r in self.rows if r.ok]

    @property
    def conflicts(self) -> list[BulkRow]:
        return [r for r in self.rows if r.conflict]

    @property
    def failed(self) -> list[BulkRow]:
        """Rows refused for another reason than a conflict (forbidden, too large, ...)."""
        return [r for r in self.rows if not r.ok and not r.conflict]


@dataclass(frozen=True)
class ChangesPage:
    """One page of a `_changes` feed. `last_seq` is opaque: pass it back, never parse it."""

    results: list[Doc]
    last_seq: str
    pending: int | None


class MissingCredentials(Unauthorized):
    """No CouchDB user/password in the settings; couchwatch never runs anonymously."""


class CouchClient:
    """Domain operations on one CouchDB server."""

    def __init__(self, transport: CouchTransport) -> None:
        if transport.session.auth is None:
            raise MissingCredentials(
                "COUCHDB_USER and COUCHDB_PASSWORD must be set: couchwatch always authenticates"
            )
        self.transport = transport

    @classmethod
    def from_settings(cls, settings: Settings) -> CouchClient:
        """Build a client from the settings (credentials from settings or `COUCHDB_URL`)."""
        return cls(
            CouchTransport(
                settings.couchdb_url,
                auth=settings.couchdb_credentials(),
                timeout_s=settings.couchdb_timeout_s,
                retries=settings.couchdb_retries,
            )
        )

    def close(self) -> None:
        self.transport.close()

    # -- server and databases ---------------------------------------------------------------

    def server_info(self) -> Doc:
        """Return the server's welcome document (`GET /`)."""
        info: Doc = self.transport.request("GET", "/")
        return info

    def session_user(self) -> str | None:
        """Return the authenticated user name per `GET /_session` (None when anonymous)."""
        body = self.transport.request("GET", "/_session")
        return (body or {}).get("userCtx", {}).get("name")

    def ensure_db(self, db: str) -> bool:
        """Create `db` if missing. Return True when it was created now."""
        try:
            self.transport.request("PUT", db_path(db))
        except DatabaseExists:
            return False
        return True

    def delete_db(self, db: str) -> None:
        """Delete `db`; a missing database is not an error."""
        with contextlib.suppress(NotFound):
            self.transport.request("DELETE", db_path(db))

    def db_info(self, db: str) -> Doc:
        info: Doc = self.transport.request("GET", db_path(db))
        return info

    def ensure_index(self, db: str, fields: Sequence[str], *, name: str) -> None:
        """Create (or keep) a Mango JSON index on `fields`, in design doc `_design/<name>`."""
        self.transport.request(
            "POST",
            f"{db_path(db)}/_index",
            json={"index": {"fields": list(fields)}, "name": name, "ddoc": name, "type": "json"},
            idempotent=True,
        )

    # -- documents ----------------------------------------------------------------------------

    def get(self, db: str, doc_id: str, *, attachments: bool = False) -> Doc | None:
        """Return the document (with inline base64 attachments if asked) or None if missing."""
        params = {"attachments": "true"} if attachments else None
        try:
            doc: Doc = self.transport.request("GET", doc_path(db, doc_id), params=params)
        except NotFound:
            return None
        return doc

    def put(self, db: str, doc: Doc) -> str:
        """Write one document (with its `_rev` when updating); return the new revision."""
        body = self.transport.request("PUT", doc_path(db, doc["_id"]), json=doc)
        return str(body["rev"])

    def delete(self, db: str, doc_id: str, rev: str) -> None:
        self.transport.request("DELETE", doc_path(db, doc_id), params={"rev": rev})

    def bulk_docs(self, db: str, docs: Sequence[Doc]) -> BulkResult:
        """Write documents in one `_bulk_docs` call and return every row's outcome.

        Safe to repeat when every document has a fixed `_id`: a repeat yields conflicts.
        """
        if not docs:
            return BulkResult()
        reply = self.transport.request(
            "POST", f"{db_path(db)}/_bulk_docs", json={"docs": list(docs)}, idempotent=True
        )
        rows = [
            BulkRow(
                id=str(row.get("id")),
                rev=row.get("rev"),
                error=row.get("error"),
                reason=row.get("reason"),
            )
            for row in reply
        ]
        return BulkResult(rows)

    def get_many(self, db: str, ids: Sequence[str]) -> dict[str, Doc]:
        """Return the existing documents among `ids` (missing and deleted ones left out)."""
        found: dict[str, Doc] = {}
        for start in range(0, len(ids), DEFAULT_PAGE_SIZE):
            chunk = list(ids[start : start + DEFAULT_PAGE_SIZE])
            reply = self.transport.request(
                "POST",
                f"{db_path(db)}/_all_docs",
                params={"include_docs": "true"},
                json={"keys": chunk},
                idempotent=True,
            )
            for row in reply.get("rows", []):
                doc = row.get("doc")
                if doc is not None:
                    found[row["id"]] = doc
        return found

    def upsert(self, db: str, doc: Doc, merge: Merge | None = None) -> str:
        """Write `doc` under its deterministic `_id`; on 409 merge with what is there.

        `merge(existing, new)` returns the document to store (default: `new` wins). Returns the
        current revision; a merge that changes nothing writes nothing.
        """
        candidate = dict(doc)
        for _ in range(MAX_UPSERT_ATTEMPTS):
            try:
                return self.put(db, candidate)
            except Conflict:
                existing = self.get(db, doc["_id"])
                if existing is None:
                    candidate = dict(doc)
                    candidate.pop("_rev", None)
                    continue
                merged = merge(existing, doc) if merge else {**doc}
                merged["_id"], merged["_rev"] = existing["_id"], existing["_rev"]
                if _same_content(merged, existing):
                    return str(existing["_rev"])
                candidate = merged
        raise Conflict(f"upsert of {doc['_id']!r} in {db} kept conflicting", status=409)

    def bulk_upsert(self, db: str, docs: Sequence[Doc], merge: Merge | None = None) -> BulkResult:
        """Upsert many documents: `_bulk_docs`, then merge and rewrite the ones that conflicted.

        Returns the final rows; rows in `failed` were refused by the server for a reason that
        merging cannot fix, and the caller must record them.
        """
        by_id = {d["_id"]: d for d in docs}
        result = self.bulk_docs(db, list(by_id.values()))
        final = {row.id: row for row in result.rows}
        for _ in range(MAX_UPSERT_ATTEMPTS):
            conflicted = [row.id for row in final.values() if row.conflict]
            if not conflicted:
                break
            existing = self.get_many(db, conflicted)
            rewrite: list[Doc] = []
            for doc_id in conflicted:
                new = by_id[doc_id]
                old = existing.get(doc_id)
                if old is None:
                    rewrite.append({k: v for k, v in new.items() if k != "_rev"})
                    continue
                merged = merge(old, new) if merge else dict(new)
                merged["_id"], merged["_rev"] = old["_id"], old["_rev"]
                if _same_content(merged, old):
                    final[doc_id] = BulkRow(id=doc_id, rev=old["_rev"])
                else:
                    rewrite.append(merged)
            for row in self.bulk_docs(db, rewrite).rows:
                final[row.id] = row
        return BulkResult(list(final.values()))

    # -- queries ------------------------------------------------------------------------------

    def find_page(self, db: str, query: Doc) -> tuple[list[Doc], str | None]:
        """Run one `_find` request; `query` must carry its own `limit`. Returns (docs, bookmark)."""
        if "limit" not in query:
            raise ValueError("a _find query must set limit: CouchDB 3 silently defaults to 25")
        reply = self.transport.request("POST", f"{db_path(db)}/_find", json=query, idempotent=True)
        return list(reply.get("docs", [])), reply.get("bookmark")

    def iter_by_key(
        self,
        db: str,
        *,
        selector: Doc,
        key_field: str,
        start: Any = None,
        end: Any = None,
        sort_prefix: Sequence[str] = (),
        index: tuple[str, str] | None = None,
        fields: Sequence[str] | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> Iterator[Doc]:
        """Yield every document matching `selector`, ordered by `key_field`, paging on its value.

        Each page asks for `key_field >= last key seen` and drops the documents already yielded
        at that key, so paging is stable under inserts and needs neither `skip` nor bookmarks.
        `start` is inclusive, `end` exclusive.
        """
        last_key, seen_at_last = start, set[str]()
        limit = page_size
        while True:
            key_cond: Doc = {}
            if last_key is not None:
                key_cond["$gte"] = last_key
            if end is not None:
                key_cond["$lt"] = end
            if not key_cond:
                key_cond["$gt"] = None
            query: Doc = {
                "selector": {**selector, key_field: key_cond},
                "sort": [{f: "asc"} for f in (*sort_prefix, key_field)],
                "limit": limit,
            }
            if index:
                query["use_index"] = list(index)
            if fields is not None:
                query["fields"] = sorted({*fields, "_id", key_field})
            docs, _ = self.find_page(db, query)
            fresh = [
                d for d in docs if not (d.get(key_field) == last_key and d["_id"] in seen_at_last)
            ]
            yield from fresh
            if len(docs) < limit:
                return
            if not fresh:  # a whole page shares one key: widen the page and ask again
                limit *= 2
                continue
            new_last = fresh[-1].get(key_field)
            if new_last != last_key:
                seen_at_last = set()
            last_key = new_last
            seen_at_last.update(d["_id"] for d in fresh if d.get(key_field) == last_key)

    def iter_all_docs(
        self, db: str, *, include_docs: bool = True, page_size: int = DEFAULT_PAGE_SIZE
    ) -> Iterator[Doc]:
        """Yield every (non-design) document of `db` in `_id` order, paging on the key."""
        start_key: str | None = None
        while True:
            params: dict[str, Any] = {
                "limit": page_size + 1,
                "include_docs": "true" if include_docs else "false",
            }
            if start_key is not None:
                params["startkey"] = _json_key(start_key)
            reply = self.transport.request("GET", f"{db_path(db)}/_all_docs", params=params)
            rows = reply.get("rows", [])
            page = rows[:page_size]
            for row in page:
                if row["id"].startswith("_design/"):
                    continue
                yield row["doc"] if include_docs else {"_id": row["id"], **row.get("value", {})}
            if len(rows) <= page_size:
                return
            start_key = rows[page_size]["id"]

    def changes(
        self,
        db: str,
        *,
        since: str = "0",
        limit: int = DEFAULT_PAGE_SIZE,
        include_docs: bool = True,
    ) -> ChangesPage:
        """Return one page of `_changes` after the opaque `since` sequence."""
        reply = self.transport.request(
            "GET",
            f"{db_path(db)}/_changes",
            params={
                "since": since,
                "limit": limit,
                "include_docs": "true" if include_docs else "false",
            },
        )
        return ChangesPage(
            results=list(reply.get("results", [])),
            last_seq=_opaque(reply.get("last_seq", since)),
            pending=reply.get("pending"),
        )

    # -- _local checkpoints and attachments ---------------------------------------------------

    def get_local(self, db: str, name: str) -> Doc | None:
        """Return the `_local/<name>` document (never replicated) or None."""
        return self.get(db, f"_local/{name}")

    def put_local(self, db: str, name: str, body: Doc) -> None:
        """Write `_local/<name>`, replacing whatever revision is there."""
        doc_id = f"_local/{name}"
        existing = self.get(db, doc_id)
        doc = {**body, "_id": doc_id}
        if existing is not None:
            doc["_rev"] = existing["_rev"]
        self.put(db, doc)

    def put_attachment(
        self, db: str, doc_id: str, rev: str, name: str, data: bytes, content_type: str
    ) -> str:
        """Attach `data` to a document revision; return the new revision."""
        body = self.transport.request(
            "PUT",
            f"{doc_path(db, doc_id)}/{_quote_attachment(name)}",
            params={"rev": rev},
            data=data,
            headers={"Content-Type": content_type},
        )
        return str(body["rev"])

    def get_attachment(self, db: str, doc_id: str, name: str) -> bytes:
        """Return an attachment's bytes (raises NotFound when missing)."""
        data: bytes = self.transport.request(
            "GET", f"{doc_path(db, doc_id)}/{_quote_attachment(name)}", raw=True
        )
        return data


def _opaque(seq: Any) -> str:
    """CouchDB 3 sends seq as a string; PouchDB Server as a number. Keep it as an opaque string."""
    return seq if isinstance(seq, str) else str(seq)


def _json_key(key: str) -> str:
    return json.dumps(key)


def _quote_attachment(name: str) -> str:
    return path_segment(name)


def _same_content(a: Doc, b: Doc) -> bool:
    def strip(d: Doc) -> Doc:
        return {k: v for k, v in d.items() if k not in ("_rev", "updated_at")}

    return strip(a) == strip(b)


BINARY = "application/octet-stream"


def inline_attachment(payload: bytes, content_type: str = BINARY) -> Doc:
    """An `_attachments` entry carrying `payload` inline (base64), written with its document."""
    return {"content_type": content_type, "data": base64.b64encode(payload).decode("ascii")}


def inline_payload(doc: Doc | None, name: str) -> bytes | None:
    """The bytes of attachment `name` of a document read with `attachments=True`, or None."""
    data = (doc or {}).get("_attachments", {}).get(name, {}).get("data")
    return None if data is None else base64.b64decode(data)
