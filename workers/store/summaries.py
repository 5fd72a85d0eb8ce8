"""Per-entity history summaries in `<prefix>models`: what a retrain needs instead of a full read.

One document per entity, `_id` `history-summary-<entity key>` (:func:`summary_id`), type
`history_summary`, holding the summary (`workers/engine/summary.py`, serialized by
`workers/engine/persistence.py`) as the attachment `summary.bin` and, in the document, what the
summary was built from:

- `entity_field`, `window`, `history_days`: the settings it was built under (a change means a
  full read);
- `read_at`: the training clock of the read that last brought it up to date;
- `full_read_at`: the training clock of the last full read (rebuilt every
  `COUCHWATCH_SUMMARY_REBUILD_DAYS`);
- `model_version`: the model trained on it, `events`: the events it summarizes.

Written by training only, under the entity's training lock: the newest write wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workers.couch.client import CouchClient, inline_attachment, inline_payload
from workers.ids import Entity, entity_key

ATTACHMENT = "summary.bin"
DOC_TYPE = "history_summary"
PREFIX = "history-summary-"


def summary_id(entity: Entity) -> str:
    return f"{PREFIX}{entity_key(entity)}"


@dataclass(frozen=True)
class StoredSummary:
    """A stored summary's bytes and the fields its document records."""

    payload: bytes
    meta: dict[str, Any]
    rev: str


def load(couch: CouchClient, db: str, entity: Entity) -> StoredSummary | None:
    """The entity's stored summary, or None (never stored, or its attachment is missing)."""
    doc = couch.get(db, summary_id(entity), attachments=True)
    payload = inline_payload(doc, ATTACHMENT)
    if doc is None or payload is None:
        return None
    meta = {k: v for k, v in doc.items() if not k.startswith("_")}
    return StoredSummary(payload, meta, str(doc["_rev"]))


def save(
    couch: CouchClient,
    db: str,
    entity: Entity,
    payload: bytes,
    meta: dict[str, Any],
    *,
    rev: str | None = None,
) -> None:
    """Store (replace) the entity's summary and its fields: one write when `rev` is the stored
    document's revision (or there is none), else the upsert's conflict round."""
    doc = {
        "_id": summary_id(entity),
        "type": DOC_TYPE,
        "entity": entity,
        **meta,
        "_attachments": {ATTACHMENT: inline_attachment(payload)},
        **({"_rev": rev} if rev else {}),
    }
    couch.upsert(db, doc)
