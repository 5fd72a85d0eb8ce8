"""Write validated events: a duplicate is a duplicate of the *same* content.

Content-hash ids (`evt-<sha256>`) are predictable and clients may set `_id`, so anyone who may
write events can store a different event under the id a real one will get ("id squatting"). A
`409` alone therefore proves nothing: on a conflict the stored document is read and compared.

- same content (numbers compared by value: PouchDB stores `5.0` as `5`) -> `duplicate`;
- different content -> the new event is stored under an alternate id, `<id>~<20 hex>`, an HMAC of
  its content under a random salt kept in the events database's `_local/couchwatch-id-salt`
  (never replicated, not readable through the API): a writer cannot predict it, and the same
  event sent again gets the same alternate id, so a re-ingest is still a no-op -> `conflict`;
- the alternate id taken by yet another content (someone who read the salt) -> `id_mismatch`:
  the caller quarantines the event with that reason, it is never dropped.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from workers.couch.client import BulkRow, CouchClient
from workers.couch.errors import Conflict
from workers.events import MAX_ID_CHARS

SALT_DOC = "couchwatch-id-salt"
ALT_SEPARATOR = "~"
ALT_HEX = 20
STATUSES = ("stored", "duplicate", "conflict", "id_mismatch", "refused")


@dataclass(frozen=True)
class Written:
    """The outcome of one event: `status` (one of `STATUSES`), the id it is stored under (or
    the one it was refused under) and, for anything but `stored`/`duplicate` of the same id, a
    one-line `reason`."""

    status: str
    id: str
    reason: str | None = None
    original_id: str | None = None


def store(client: CouchClient, db: str, events: Sequence[dict[str, Any]]) -> list[Written]:
    """Write `events` (each with its `_id`) with `_bulk_docs`; resolve id conflicts by content
    (a repeat of an id within `events` is one too). Returns one outcome per event, in order."""
    out: list[Written | None] = [None] * len(events)
    pending: list[int] = []
    for i, row in enumerate(_rows(client, db, events)):
        if row.ok:
            out[i] = Written("stored", row.id)
        elif row.conflict:
            pending.append(i)
        else:
            out[i] = Written("refused", row.id, f"refused by CouchDB: {row.error}: {row.reason}")
    if pending:
        _resolve(client, db, events, pending, out)
    return [
        w if w is not None else Written("refused", str(e["_id"]), "unsettled")
        for w, e in zip(out, events, strict=True)
    ]


def same_content(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two event documents hold the same event (`_id`, `_rev` and other `_` fields
    aside). Python equality compares numbers by value (`5 == 5.0`)."""

    def strip(doc: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in doc.items() if not k.startswith("_")}

    return strip(a) == strip(b)


def alternate_id(salt: str, doc: dict[str, Any]) -> str:
    """The id an event gets when its own id holds another event (see the module docstring)."""
    content = {k: v for k, v in doc.items() if not k.startswith("_")}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    mac = hmac.new(salt.encode(), canonical.encode(), hashlib.sha256).hexdigest()[:ALT_HEX]
    base = str(doc["_id"])[: MAX_ID_CHARS - ALT_HEX - len(ALT_SEPARATOR)]
    return f"{base}{ALT_SEPARATOR}{mac}"


def id_salt(client: CouchClient, db: str) -> str:
    """The events database's secret salt for alternate ids, created on first use (the first
    writer wins a race; everyone then reads its salt)."""
    for _ in range(3):
        found = client.get_local(db, SALT_DOC)
        if found and isinstance(found.get("salt"), str):
            return str(found["salt"])
        try:
            client.put(db, {"_id": f"_local/{SALT_DOC}", "salt": secrets.token_hex(32)})
        except Conflict:
            continue
    raise RuntimeError(f"could not read or create _local/{SALT_DOC} in {db}")


def _rows(client: CouchClient, db: str, docs: Sequence[dict[str, Any]]) -> list[BulkRow]:
    """One `_bulk_docs` row per document of `docs`, in its order, matched by id: PouchDB Server
    does not answer in request order. Only the first document of an id is sent; a later one
    gets a `conflict` row (it is then compared with what the first one stored)."""
    first: dict[str, dict[str, Any]] = {}
    for doc in docs:
        first.setdefault(str(doc["_id"]), doc)
    by_id = {row.id: row for row in client.bulk_docs(db, list(first.values())).rows}
    rows: list[BulkRow] = []
    for doc in docs:
        doc_id = str(doc["_id"])
        if first[doc_id] is not doc:
            rows.append(BulkRow(id=doc_id, error="conflict", reason="earlier in the batch"))
        else:
            rows.append(by_id.get(doc_id) or BulkRow(id=doc_id, error="no_reply", reason="none"))
    return rows


def _resolve(
    client: CouchClient,
    db: str,
    events: Sequence[dict[str, Any]],
    pending: list[int],
    out: list[Written | None],
) -> None:
    """Settle the events whose id was taken: duplicates, or a second write under alternate ids."""
    stored = client.get_many(db, sorted({str(events[i]["_id"]) for i in pending}))
    moved: list[int] = []
    for i in pending:
        there = stored.get(str(events[i]["_id"]))
        if there is not None and same_content(there, events[i]):
            out[i] = Written("duplicate", str(events[i]["_id"]))
        else:
            moved.append(i)
    if not moved:
        return
    salt = id_salt(client, db)
    alternates = [{**events[i], "_id": alternate_id(salt, events[i])} for i in moved]
    rows = _rows(client, db, alternates)
    taken = [k for k, row in enumerate(rows) if row.conflict]
    stored_alt = client.get_many(db, sorted({alternates[k]["_id"] for k in taken})) if taken else {}
    for k, (i, row) in enumerate(zip(moved, rows, strict=True)):
        original, alt = str(events[i]["_id"]), alternates[k]["_id"]
        held = f"id {_short(original)} already holds a different event"
        there = stored_alt.get(alt)
        if row.ok:
            out[i] = Written("conflict", alt, f"{held}; stored as {_short(alt)}", original)
        elif row.conflict and there is not None and same_content(there, alternates[k]):
            out[i] = Written("duplicate", alt, f"{held}; already stored as {_short(alt)}", original)
        elif row.conflict:
            reason = f"id_mismatch: {held}, and so does its alternate id {_short(alt)}"
            out[i] = Written("id_mismatch", alt, reason, original)
        else:
            reason = f"refused by CouchDB: {row.error}: {row.reason}"
            out[i] = Written("refused", alt, reason, original)


def _short(doc_id: str, limit: int = 80) -> str:
    return doc_id if len(doc_id) <= limit else doc_id[: limit - 1] + "…"
