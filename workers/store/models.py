"""Per-entity model versions in `<prefix>models`: one document per version with the fitted model
as an attachment, and a head document per entity naming the active version.

Writes are idempotent per training request: the version document's `_id` derives from the
request, so a redelivered task finds its own version instead of adding a second one.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from workers.couch.client import BINARY, CouchClient, inline_attachment, inline_payload
from workers.events import canonical_timestamp
from workers.ids import Entity, entity_key, short_hash
from workers.store.registry import BY_TYPE_ENTITY

ATTACHMENT = "model.bin"
CONTENT_TYPE = BINARY
HEAD_TYPE = "model_head"
VERSION_TYPE = "model"


def head_id(entity: Entity) -> str:
    return f"model-head-{entity_key(entity)}"


def version_id(entity: Entity, request_id: str) -> str:
    return f"model-{entity_key(entity)}-{short_hash(request_id)}"


def version_doc_id(head: dict[str, Any], version: int) -> str | None:
    """The id of the version document of `version` that `head` names (None if not kept)."""
    match = [v["doc_id"] for v in head.get("versions", []) if v["version"] == version]
    return str(match[0]) if match else None


@dataclass(frozen=True)
class StoredModel:
    entity: Entity
    version: int
    doc_id: str
    payload: bytes
    meta: dict[str, Any]


class ModelStore:
    """Save, load, list and roll back entity models (keeping the last `keep` versions)."""

    def __init__(self, client: CouchClient, db: str, *, keep: int = 3) -> None:
        self.client, self.db, self.keep = client, db, keep

    def head(self, entity: Entity) -> dict[str, Any] | None:
        return self.client.get(self.db, head_id(entity))

    def iter_heads(self) -> Iterator[dict[str, Any]]:
        """Every head document, in entity order (paged on the registry's [type, entity] index,
        which model heads share)."""
        yield from self.client.iter_by_key(
            self.db,
            selector={"type": HEAD_TYPE},
            key_field="entity",
            sort_prefix=("type",),
            index=(BY_TYPE_ENTITY, BY_TYPE_ENTITY),
        )

    def heads(self, entities: list[Entity]) -> dict[Entity, dict[str, Any]]:
        """Head documents of many entities in one request."""
        docs = self.client.get_many(self.db, [head_id(e) for e in entities])
        by_id = {head_id(e): e for e in entities}
        return {by_id[k]: v for k, v in docs.items()}

    def save(
        self, entity: Entity, request_id: str, payload: bytes, meta: dict[str, Any]
    ) -> tuple[int, bool]:
        """Store a model for `entity` from training request `request_id`; activate it.

        Returns (version, created). Repeating the same request returns the stored version with
        created False. Versions beyond the newest `keep` are deleted.
        """
        doc_id = version_id(entity, request_id)
        found = self.client.get_many(self.db, [doc_id, head_id(entity)])
        existing = found.get(doc_id)
        head = found.get(head_id(entity)) or {
            "_id": head_id(entity),
            "type": HEAD_TYPE,
            "versions": [],
        }
        if existing is not None and ATTACHMENT in existing.get("_attachments", {}):
            self._activate(entity, head, existing["version"], doc_id)
            return int(existing["version"]), False
        version = max([v["version"] for v in head["versions"]], default=0) + 1
        if existing is not None:  # an older writer crashed between document and attachment
            version, rev = int(existing["version"]), existing["_rev"]
            self.client.put_attachment(self.db, doc_id, rev, ATTACHMENT, payload, CONTENT_TYPE)
        else:  # document and model bytes in one request: no half-written version
            doc = {
                "_id": doc_id,
                "type": VERSION_TYPE,
                "entity": entity,
                "version": version,
                "request_id": request_id,
                "created_at": canonical_timestamp(datetime.now(UTC)),
                **meta,
                "_attachments": {ATTACHMENT: inline_attachment(payload, CONTENT_TYPE)},
            }
            return self._write_new(entity, head, doc)
        self._activate(entity, head, version, doc_id)
        return version, True

    def _write_new(
        self, entity: Entity, head: dict[str, Any], doc: dict[str, Any]
    ) -> tuple[int, bool]:
        """The new version document and the head naming it, in one `_bulk_docs` request."""
        version, doc_id = int(doc["version"]), str(doc["_id"])
        updated = _with_version(head, entity, version, doc_id, self.keep)
        rows = {row.id: row for row in self.client.bulk_docs(self.db, [doc, updated]).rows}
        written, head_row = rows[doc_id], rows[head_id(entity)]
        if written.conflict:  # a redelivery of the same request stored it first: use that one
            stored = self.client.get(self.db, doc_id) or {}
            version = int(stored.get("version", version))
            self._activate(entity, head, version, doc_id)
            return version, False
        if not written.ok:
            raise RuntimeError(f"model version {doc_id!r} refused: {written.reason}")
        if head_row.ok:
            self._drop_unkept(head, updated)
        else:  # the head changed since it was read: merge into the current one
            self._activate(entity, head, version, doc_id)
        return version, True

    def load(
        self, entity: Entity, version: int | None = None, *, head: dict[str, Any] | None = None
    ) -> StoredModel | None:
        """The active (or the given) version of an entity's model, or None.

        `head` is the entity's head document when the caller already read it (`heads`).
        """
        head = head if head is not None else self.head(entity)
        if head is None:
            return None
        wanted = version if version is not None else head.get("active_version")
        match = [v for v in head["versions"] if v["version"] == wanted]
        if not match:
            return None
        doc = self.client.get(self.db, match[0]["doc_id"], attachments=True)
        payload = inline_payload(doc, ATTACHMENT)
        if doc is None or payload is None:
            return None
        meta = {k: v for k, v in doc.items() if not k.startswith("_")}
        return StoredModel(entity, int(doc["version"]), doc["_id"], payload, meta)

    def rollback(self, entity: Entity, to_version: int | None = None) -> int:
        """Make an older kept version active (default: the one before the active one)."""
        head = self.head(entity)
        if head is None:
            raise KeyError(f"no model for entity {entity!r}")
        kept = sorted(v["version"] for v in head["versions"])
        active = head.get("active_version")
        if to_version is None:
            older = [v for v in kept if active is not None and v < active]
            if not older:
                raise KeyError(f"entity {entity!r} has no version older than {active}")
            to_version = older[-1]
        if to_version not in kept:
            raise KeyError(f"entity {entity!r} keeps versions {kept}, not {to_version}")
        head["active_version"] = to_version
        head["rolled_back_at"] = canonical_timestamp(datetime.now(UTC))
        self.client.put(self.db, head)
        return to_version

    def _activate(self, entity: Entity, head: dict[str, Any], version: int, doc_id: str) -> None:
        def merge(old: dict[str, Any], _: dict[str, Any]) -> dict[str, Any]:
            return _with_version(old, entity, version, doc_id, self.keep)

        updated = _with_version(head, entity, version, doc_id, self.keep)
        self.client.upsert(self.db, updated, merge=merge)
        self._drop_unkept(head, updated)

    def _drop_unkept(self, head: dict[str, Any], updated: dict[str, Any]) -> None:
        """Delete the version documents `head` named that `updated` no longer keeps."""
        kept = {v["doc_id"] for v in updated["versions"]}
        for old in head.get("versions", []):
            if old["doc_id"] in kept:
                continue
            doc = self.client.get(self.db, old["doc_id"])
            if doc is not None:
                self.client.delete(self.db, doc["_id"], doc["_rev"])


def _with_version(
    head: dict[str, Any], entity: Entity, version: int, doc_id: str, keep: int
) -> dict[str, Any]:
    """`head` with `version` added and active, trimmed to the newest `keep` versions."""
    versions = [v for v in head.get("versions", []) if v["version"] != version]
    versions.append({"version": version, "doc_id": doc_id})
    versions.sort(key=lambda v: v["version"])
    return {
        **head,
        "type": HEAD_TYPE,
        "entity": entity,
        "versions": versions[-keep:],
        "active_version": version,
        "updated_at": canonical_timestamp(datetime.now(UTC)),
    }


class ModelCache:
    """A bounded per-process LRU of loaded models, keyed by entity and checked by version."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[Entity, tuple[int, Any]] = OrderedDict()

    def get(self, entity: Entity, version: int) -> Any | None:
        item = self._items.get(entity)
        if item is None or item[0] != version:
            return None
        self._items.move_to_end(entity)
        return item[1]

    def put(self, entity: Entity, version: int, model: Any) -> None:
        self._items[entity] = (version, model)
        self._items.move_to_end(entity)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)
