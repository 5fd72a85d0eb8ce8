"""Keyset pages over anomalies (and incidents), newest window first, with an opaque cursor.

Order is (window_start, _id) descending, backed by the `page-*` indexes
(`workers.store.anomalies.PAGE_INDEXES`; incidents have the same, on `start`). A page after a
cursor (w, i) is read in two index-backed queries: the rest of window w (`_id < i`), then older
windows (`window_start < w`). No `skip`, no bookmarks: documents inserted meanwhile never shift
a page, and every document is listed exactly once.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

from workers.couch.client import CouchClient
from workers.store.anomalies import (
    PAGE_ENTITY,
    PAGE_INDEXES,
    PAGE_SEVERITY,
    PAGE_STATUS,
    PAGE_TIME,
)

Doc = dict[str, Any]


class BadCursor(ValueError):
    """The cursor is not one this API issued for these filters."""


@dataclass(frozen=True)
class AnomalyFilter:
    """Filters of `GET /v1/anomalies`; times are canonical UTC text, `until` exclusive."""

    entity: str | None = None
    severity: str | None = None
    status: str | None = None
    since: str | None = None
    until: str | None = None

    def index(self) -> tuple[str, dict[str, Any]]:
        """(index name, its equality prefix) for the most selective filter given."""
        for name, field, value in (
            (PAGE_ENTITY, "entity", self.entity),
            (PAGE_STATUS, "review.status", self.status),
            (PAGE_SEVERITY, "severity", self.severity),
        ):
            if value is not None:
                return name, {field: value}
        return PAGE_TIME, {}

    def selector(self) -> Doc:
        chosen = {"entity": self.entity, "review.status": self.status, "severity": self.severity}
        return {k: v for k, v in chosen.items() if v is not None}

    def fingerprint(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def encode_cursor(flt: AnomalyFilter, doc: Doc, key_field: str = "window_start") -> str:
    raw = json.dumps({"w": doc[key_field], "i": doc["_id"], "f": flt.fingerprint()})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(flt: AnomalyFilter, cursor: str) -> tuple[str, str]:
    """(window_start, _id) of the last document of the previous page."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        window, doc_id, fp = data["w"], data["i"], data["f"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise BadCursor("cursor is not valid (pass back next_cursor unchanged)") from None
    if not (isinstance(window, str) and isinstance(doc_id, str)) or fp != flt.fingerprint():
        raise BadCursor("cursor belongs to other filters; start again without a cursor")
    return window, doc_id


def anomaly_page(
    client: CouchClient,
    db: str,
    flt: AnomalyFilter,
    *,
    limit: int,
    cursor: str | None,
    key_field: str = "window_start",
    also: Doc | None = None,
) -> tuple[list[Doc], str | None]:
    """Up to `limit` anomalies after `cursor`; returns (docs, next cursor or None at the end).

    `key_field` is the time field of the page order (incidents page on `start`); `also` holds
    more equality filters applied on top of `flt` (a missing field equals None).
    """
    name, prefix = flt.index()
    extra = {k: v for k, v in {**flt.selector(), **(also or {})}.items() if k not in prefix}
    want = limit + 1
    docs: list[Doc] = []
    upper: Doc = {"$lt": flt.until} if flt.until else {}
    if cursor is not None:
        window, last_id = decode_cursor(flt, cursor)
        docs += _collect(
            client, db, name, prefix, window, extra, want, after_id=last_id, key_field=key_field
        )
        upper = {"$lt": window}
    if len(docs) < want:
        bound: Doc = {**upper}
        bound["$gte" if flt.since else "$gt"] = flt.since if flt.since else None
        docs += _collect(
            client, db, name, prefix, bound, extra, want - len(docs), key_field=key_field
        )
    page = docs[:limit]
    more = len(docs) > limit and bool(page)
    return page, encode_cursor(flt, page[-1], key_field) if more else None


def _collect(
    client: CouchClient,
    db: str,
    index: str,
    prefix: Doc,
    window: Any,
    extra: Doc,
    want: int,
    *,
    after_id: str | None = None,
    key_field: str = "window_start",
) -> list[Doc]:
    """`want` documents in page order matching `extra` (and after `after_id`).

    The server query holds only the index's own fields; the other filters are applied here,
    widening the request until enough match or the range is exhausted. (PouchDB Server applies
    `limit` before non-index conditions; CouchDB does not: this is right on both.)
    """
    limit = want
    while True:
        selector = {**prefix, key_field: window}
        raw = _find(client, db, index, prefix, selector, limit, key_field)
        rows = raw
        if after_id is not None:  # server collation order: drop up to and including the cursor
            ids = [d["_id"] for d in raw]
            rows = (
                raw[ids.index(after_id) + 1 :]
                if after_id in ids
                else [d for d in raw if d["_id"] < after_id]
            )
        fresh = [d for d in rows if all(_field(d, k) == v for k, v in extra.items())]
        located = after_id is None or len(raw) < limit or after_id in {d["_id"] for d in raw}
        if located and (len(fresh) >= want or len(raw) < limit):
            return fresh[:want]
        limit *= 2


def _field(doc: Doc, dotted: str) -> Any:
    value: Any = doc
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _find(
    client: CouchClient,
    db: str,
    index: str,
    prefix: Doc,
    selector: Doc,
    limit: int,
    key_field: str = "window_start",
) -> list[Doc]:
    fields = (*prefix, key_field, "_id")
    assert index in PAGE_INDEXES
    docs, _ = client.find_page(
        db,
        {
            "selector": selector,  # only anomalies have window_start in this db
            "sort": [{f: "desc"} for f in fields],
            "use_index": [index, index],
            "limit": limit,
        },
    )
    return docs
