"""Per-entity history summaries in `<prefix>models`: what a retrain needs instead of a full read.

One document per entity, `_id` `history-summary-<entity key>` (:func:`summary_id`), type
`history_summary`, holding the summary (`workers/engine/summary.py`, serialized by
`workers/engine/persistence.py`) in two attachments split at the UTC day `sealed_before`:
`sealed.bin` (the days before it) and `open.bin` (that day and after). A retrain whose re-read
days are all in the open part uploads `open.bin` only and keeps `sealed.bin` as a stub
(:class:`AttachmentRef`), so the bytes written do not grow with the history
(`workers/training_history.py` chooses the split). The document records, besides:

- `entity_field`, `window`, `history_days`: the settings it was built under (a change means a
  full read);
- `read_at`: the training clock of the read that last brought it up to date;
- `full_read_at`: the training clock of the last full read (rebuilt every
  `COUCHWATCH_SUMMARY_REBUILD_DAYS`);
- `model_version`: the model trained on it, `events`: the events it summarizes.

A document of the earlier layout (the whole summary as `summary.bin`) is still read.
Written by training only, under the entity's training lock: the newest write wins.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from workers.couch.client import BINARY, CouchClient, inline_attachment, inline_payload
from workers.couch.errors import Conflict, CouchError
from workers.ids import Entity, entity_key

SEALED = "sealed.bin"
OPEN = "open.bin"
LEGACY = "summary.bin"  # the earlier layout: the whole summary in one attachment
DOC_TYPE = "history_summary"
PREFIX = "history-summary-"


def summary_id(entity: Entity) -> str:
    return f"{PREFIX}{entity_key(entity)}"


@dataclass(frozen=True)
class AttachmentRef:
    """A stored attachment as its document's revision knows it: enough to keep it unchanged in
    the next revision (a stub; PouchDB finds a stub's attachment by `digest`, CouchDB 3 by name
    in the revision the write names, so a stub is only sent with that revision)."""

    content_type: str
    digest: str
    revpos: int

    def stub(self) -> dict[str, Any]:
        return {
            "stub": True,
            "content_type": self.content_type,
            "digest": self.digest,
            "revpos": self.revpos,
        }


@dataclass(frozen=True)
class StoredSummary:
    """A stored summary: its parts' bytes by attachment name in day order (sealed, open; or the
    one attachment of the earlier layout), the fields its document records, its revision and
    attachment refs."""

    parts: dict[str, bytes]
    meta: dict[str, Any]
    rev: str
    refs: dict[str, AttachmentRef]

    @property
    def sealed_before(self) -> int | None:
        """The UTC day (days since the epoch) the sealed part ends before; None if unsplit."""
        value = self.meta.get("sealed_before")
        return int(value) if SEALED in self.refs and isinstance(value, int) else None

    @property
    def size_bytes(self) -> int:
        return sum(len(p) for p in self.parts.values())


class StaleStub(Exception):
    """A write that kept an attachment as a stub was refused: the document is no longer the
    revision the stub came from (409), or the server has no such attachment (412 missing_stub).
    The caller writes every part again."""


def load(couch: CouchClient, db: str, entity: Entity) -> StoredSummary | None:
    """The entity's stored summary, or None (never stored, or an attachment is missing)."""
    doc = couch.get(db, summary_id(entity), attachments=True)
    if doc is None:
        return None
    atts: Mapping[str, Any] = doc.get("_attachments") or {}
    names = (SEALED, OPEN) if SEALED in atts or OPEN in atts else (LEGACY,)
    found = {n: inline_payload(doc, n) for n in names}
    parts = {n: p for n, p in found.items() if p is not None}
    if len(parts) != len(names):
        return None
    refs = {
        n: AttachmentRef(
            str(atts[n].get("content_type") or BINARY),
            str(atts[n].get("digest") or ""),
            int(atts[n].get("revpos") or 0),
        )
        for n in names
    }
    meta = {k: v for k, v in doc.items() if not k.startswith("_")}
    return StoredSummary(parts, meta, str(doc["_rev"]), refs)


def save(
    couch: CouchClient,
    db: str,
    entity: Entity,
    parts: Mapping[str, bytes | AttachmentRef],
    meta: dict[str, Any],
    *,
    rev: str | None = None,
) -> None:
    """Store (replace) the entity's summary parts (`SEALED`, `OPEN`) and its fields.

    A part given as an :class:`AttachmentRef` is kept as stored (a stub): then `rev` must be the
    revision it was read with, and a refusal raises :class:`StaleStub`. Without stubs: one write
    when `rev` is the stored document's revision (or there is none), else the upsert's conflict
    round. Attachments not named in `parts` (the earlier layout's) are dropped."""
    attachments = {
        name: part.stub() if isinstance(part, AttachmentRef) else inline_attachment(part)
        for name, part in parts.items()
    }
    doc = {
        "_id": summary_id(entity),
        "type": DOC_TYPE,
        "entity": entity,
        **meta,
        "_attachments": attachments,
        **({"_rev": rev} if rev else {}),
    }
    if not any(isinstance(p, AttachmentRef) for p in parts.values()):
        couch.upsert(db, doc)
        return
    if rev is None:
        raise ValueError("a stub is only valid with the revision it was read with")
    try:
        couch.put(db, doc)
    except Conflict as exc:
        raise StaleStub(f"summary of {entity!r} changed since it was read") from exc
    except CouchError as exc:
        if exc.status == 412 and exc.error == "missing_stub":
            raise StaleStub(f"summary of {entity!r}: {exc}") from exc
        raise
