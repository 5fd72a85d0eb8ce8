"""The entity registry: one `entity` document per entity, in the models database.

`_id` is `entity-<entity key>` (:func:`registry_id`). Fields, by the update that writes them:

- seen by the scoring planner (:func:`record_seen`): `first_seen` (earliest event timestamp),
  `latest_batch_start` (the latest of each planned batch's *earliest* event: where the newest
  batch of events starts, not the newest event; documents written before the rename hold it as
  `last_event_at`, read by :func:`latest_batch_start`), `last_seen` (when the planner saw it),
  `events_seen`, `events_since_training`, `counted_spans` (the `_changes` ranges counted),
  `earliest_since_training` (the earliest event counted since the last training: where a
  retrain starts reading, `workers/training_history.py`);
- trained (:func:`record_trained`): `model_version`, `last_trained_at`, and the failure and
  retrain fields reset; `history_kept` when a first model keeps the waiting events as history;
  `earliest_since_training` cleared, unless events were counted while the training ran;
- a failed training (:func:`record_train_failure`): `train_failures`, `last_train_error`;
- a model that cannot be loaded (:func:`request_retrain`): `needs_retrain`, `retrain_reason`;
- a human review of one of its anomalies (:func:`record_reviewed`): `has_reviews` true, never
  unset; a training that found no reviewed anomaly for an entity without the field writes it
  false, so later trainings skip the reviewed-anomaly query (:func:`may_have_reviews`);
- events waiting for a model (`workers/unscored.py`): `unscored_since`, `unscored_events`,
  `unscored_spans` (:func:`record_awaiting_model`, :func:`clear_waiting`).

Every update is an upsert with its own merge function (one per kind of update, here and only
here), so concurrent writers (planner, training, scoring) never lose each other's fields.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from workers.couch.client import BulkResult, CouchClient
from workers.ids import Entity, entity_key

Doc = dict[str, Any]
Waiting = tuple[str, int]  # (unscored_since, unscored_events)

REGISTRY_PREFIX = "entity-"
DOC_TYPE = "entity"
# index on [type, entity] in the models database (registry entries, paged in entity order)
BY_TYPE_ENTITY = "by-type-entity"
BY_TYPE_ENTITY_FIELDS = ("type", "entity")
COUNTED_SPANS_KEPT = 20
UNSCORED_SPANS_KEPT = 20
WAITING_FIELDS = ("unscored_since", "unscored_events")
LATEST_BATCH_START = "latest_batch_start"
LEGACY_LATEST_BATCH_START = "last_event_at"  # its name before issue 14 (it misled)
HAS_REVIEWS = "has_reviews"
EARLIEST_SINCE_TRAINING = "earliest_since_training"


def registry_id(entity: Entity) -> str:
    """The registry document id of `entity` (URL-safe for any entity id)."""
    return f"{REGISTRY_PREFIX}{entity_key(entity)}"


def base(entity: Entity, **fields: Any) -> Doc:
    """A registry document of `entity` holding `fields`."""
    return {"_id": registry_id(entity), "type": DOC_TYPE, "entity": entity, **fields}


def iter_entries(couch: CouchClient, db: str) -> Iterator[Doc]:
    """Every registry document of `db`, in entity order (paged on the [type, entity] index)."""
    yield from couch.iter_by_key(
        db,
        selector={"type": DOC_TYPE},
        key_field="entity",
        sort_prefix=("type",),
        index=(BY_TYPE_ENTITY, BY_TYPE_ENTITY),
    )


def latest_batch_start(doc: Mapping[str, Any]) -> str | None:
    """The latest start (earliest event) of a planned batch, under its new or its old name."""
    value = doc.get(LATEST_BATCH_START) or doc.get(LEGACY_LATEST_BATCH_START)
    return str(value) if value else None


# -- events waiting for a model (workers/unscored.py) ----------------------------------------


def waiting_of(doc: Mapping[str, Any] | None) -> Waiting | None:
    """The events a registry document says wait for a model, or None."""
    since = (doc or {}).get("unscored_since")
    if not since:
        return None
    return str(since), int((doc or {}).get("unscored_events") or 0)


def add_waiting(doc: Doc, since: str, events: int) -> Doc:
    """`doc` with `events` more events (the earliest at `since`) waiting for a model."""
    first = doc.get("unscored_since")
    return {
        **doc,
        "unscored_since": min(str(first), since) if first else since,
        "unscored_events": int(doc.get("unscored_events") or 0) + events,
    }


def without_waiting(doc: Doc) -> Doc:
    """`doc` without waiting events."""
    return {k: v for k, v in doc.items() if k not in WAITING_FIELDS}


def kept_as_history(doc: Doc, events: int) -> Doc:
    """`doc` with its waiting events counted as the first model's history."""
    return {**without_waiting(doc), "history_kept": int(doc.get("history_kept") or 0) + events}


# -- seen by the scoring planner ---------------------------------------------------------------


def merge_seen(old: Doc, new: Doc, *, span: str, defer: bool) -> Doc:
    """`new` (one planned range's counts, :func:`record_seen`) added onto `old`.

    A range already counted (`span` in `counted_spans`: a replayed `_changes` range) leaves
    `old` as it is. With `defer`, an entity without a model gets the new events as waiting.
    """
    spans = list(old.get("counted_spans", []))
    if span in spans:
        return old
    latest = max(latest_batch_start(old) or "", new[LATEST_BATCH_START])
    merged = {
        **{k: v for k, v in old.items() if k != LEGACY_LATEST_BATCH_START},
        "counted_spans": [*spans, span][-COUNTED_SPANS_KEPT:],
        "last_seen": new["last_seen"],
        "first_seen": min(old.get("first_seen", new["first_seen"]), new["first_seen"]),
        LATEST_BATCH_START: latest,
        "events_seen": old.get("events_seen", 0) + new["events_seen"],
        "events_since_training": old.get("events_since_training", 0) + new["events_seen"],
        EARLIEST_SINCE_TRAINING: min(
            old.get(EARLIEST_SINCE_TRAINING) or new["first_seen"], new["first_seen"]
        ),
    }
    if defer and not old.get("model_version"):
        merged = add_waiting(merged, new["first_seen"], new["events_seen"])
    return merged


def record_seen(
    couch: CouchClient,
    db: str,
    counts: Mapping[Entity, int],
    earliest: Mapping[Entity, str],
    *,
    seen_at: str,
    span: str,
    defer: bool = False,
) -> set[Entity]:
    """Add one planned `_changes` range's counts (`span` names it) to each entity's document.

    With `defer` (no population profile yet), the events of entities without a model are added
    to the ones waiting for a model, decided on the document as it is written (a training that
    stores `model_version` first wins). Returns those entities, whose events must not be
    enqueued; a row the server refuses is never deferred (scoring records it).
    """
    waiting = dict.fromkeys(counts, True) if defer else {}
    docs = [
        base(
            e,
            first_seen=earliest[e],
            **{LATEST_BATCH_START: earliest[e]},
            last_seen=seen_at,
            events_seen=n,
            events_since_training=n,
            **{EARLIEST_SINCE_TRAINING: earliest[e]},
            counted_spans=[span],
            **({"unscored_since": earliest[e], "unscored_events": n} if defer else {}),
        )
        for e, n in counts.items()
    ]

    def merge(old: Doc, new: Doc) -> Doc:
        if defer:
            wait = not old.get("model_version")
            replay = span in old.get("counted_spans", [])
            # a replay was counted (and deferred or enqueued) the first time
            waiting[new["entity"]] = wait and (not replay or waiting_of(old) is not None)
        return merge_seen(old, new, span=span, defer=defer)

    result = couch.bulk_upsert(db, docs, merge=merge)
    refused = {row.id for row in result.failed}
    return {e for e, wait in waiting.items() if wait and registry_id(e) not in refused}


# -- trained, failed, to be retrained ------------------------------------------------------------


def trained_doc(
    entity: Entity, version: int, trained_at: str, *, has_reviews: bool | None = None
) -> Doc:
    """The fields a successful training sets (failures and retrain flags reset); with
    `has_reviews`, whether the training found reviewed anomalies of the entity."""
    doc = base(
        entity,
        model_version=version,
        last_trained_at=trained_at,
        events_since_training=0,
        needs_retrain=False,
        retrain_reason=None,
        train_failures=0,
        last_train_error=None,
    )
    if has_reviews is not None:
        doc[HAS_REVIEWS] = has_reviews
    return doc


def may_have_reviews(doc: Mapping[str, Any] | None) -> bool:
    """False only when the registry knows the entity has no reviewed anomaly: a training found
    none and no review came since. A document without the field (no training since the field
    exists) may have some."""
    return doc is None or doc.get(HAS_REVIEWS) is not False


def merge_reviewed(old: Doc, new: Doc) -> Doc:
    """`old` marked as having a reviewed anomaly."""
    return {**old, HAS_REVIEWS: True}


def record_reviewed(couch: CouchClient, db: str, entity: Entity) -> None:
    """Mark that a human reviewed one of the entity's anomalies: its trainings read reviews."""
    couch.upsert(db, base(entity, **{HAS_REVIEWS: True}), merge=merge_reviewed)


def merge_trained(
    old: Doc, new: Doc, *, keep_first_history: bool, read_events_seen: int | None = None
) -> tuple[Doc, Waiting | None]:
    """`new` (:func:`trained_doc`) onto `old`, and what becomes of the waiting events.

    Returns (document, waiting events still to score). For a first model with
    `keep_first_history` they are kept as its history (cleared, counted in `history_kept`) and
    none are returned. `earliest_since_training` is cleared only when `old` counts the events
    it counted before the training read (`read_events_seen`): events counted since may not have
    been read, and the next retrain must read from them.
    """
    merged = {**old, **{k: v for k, v in new.items() if k != "events_seen"}}
    if int(old.get("events_seen") or 0) == (read_events_seen or 0):
        merged.pop(EARLIEST_SINCE_TRAINING, None)
    if old.get(HAS_REVIEWS) is True:  # a review that came while this training ran stays known
        merged[HAS_REVIEWS] = True
    found = waiting_of(old)
    if found is None:
        return merged, None
    if keep_first_history and not old.get("model_version"):
        return kept_as_history(merged, found[1]), None
    return merged, found


def record_trained(
    couch: CouchClient,
    db: str,
    versions: Mapping[Entity, int],
    *,
    trained_at: str,
    keep_first_history: bool,
    has_reviews: Mapping[Entity, bool] | None = None,
    read_events_seen: Mapping[Entity, int] | None = None,
) -> tuple[BulkResult, dict[Entity, int], dict[Entity, Waiting]]:
    """Record that these entities were trained now (one bulk write).

    `read_events_seen`: each entity's `events_seen` as read before its training (see
    :func:`merge_trained`).

    Returns (the write's rows, events kept as history per entity, waiting events to score per
    entity); entities whose row was refused are in neither dict.
    """
    kept: dict[Entity, int] = {}
    to_score: dict[Entity, Waiting] = {}

    def merge(old: Doc, new: Doc) -> Doc:
        entity = new["entity"]
        kept.pop(entity, None)  # a merge can run again on a newer revision
        to_score.pop(entity, None)
        merged, found = merge_trained(
            old,
            new,
            keep_first_history=keep_first_history,
            read_events_seen=(read_events_seen or {}).get(entity),
        )
        if found is not None:
            to_score[entity] = found
        elif waiting_of(old) is not None:
            kept[entity] = int(old.get("unscored_events") or 0)
        return merged

    reviews = has_reviews or {}
    docs = [trained_doc(e, v, trained_at, has_reviews=reviews.get(e)) for e, v in versions.items()]
    result = couch.bulk_upsert(db, docs, merge=merge)
    by_id = {registry_id(e): e for e in versions}
    for row in result.failed:
        kept.pop(by_id[row.id], None)
        to_score.pop(by_id[row.id], None)
    return result, kept, to_score


def merge_train_failure(old: Doc, new: Doc) -> Doc:
    """One more failed training on `old`, with `new`'s error."""
    failures = int(old.get("train_failures", 0)) + 1
    return {**old, "train_failures": failures, "last_train_error": new["last_train_error"]}


def record_train_failure(couch: CouchClient, db: str, entity: Entity, error: str) -> None:
    """Count a failed training on the entity's document (planning stops after a few); an id
    the planner never registered has nothing to count it on."""
    existing = couch.get(db, registry_id(entity))
    if existing is None:
        return
    couch.upsert(
        db, merge_train_failure(existing, {"last_train_error": error}), merge=merge_train_failure
    )


def merge_retrain(old: Doc, new: Doc) -> Doc:
    """`old` flagged for retraining, for `new`'s reason."""
    return {**old, "needs_retrain": True, "retrain_reason": new["retrain_reason"]}


def request_retrain(couch: CouchClient, db: str, entity: Entity, reason: str) -> None:
    """Flag the entity for retraining; the next `plan_training` retrains it."""
    doc = base(entity, needs_retrain=True, retrain_reason=reason)
    couch.upsert(db, doc, merge=merge_retrain)


# -- waiting for a model: recorded by scoring, cleared once enqueued -----------------------------


def merge_awaiting_model(
    old: Doc, new: Doc, *, span: str, start: str | None, until: str | None
) -> Doc:
    """`new`'s waiting events (:func:`record_awaiting_model`) onto `old`; `span` counted once.

    A read from at or before the earliest waiting event to the end covers every event already
    waiting, so its count replaces theirs (a rescore of an entity's whole history).
    """
    spans = list(old.get("unscored_spans", []))
    if span in spans:
        return old
    since, events = str(new["unscored_since"]), int(new["unscored_events"])
    found = waiting_of(old)
    if found and until is None and (start is None or start <= found[0]):
        merged = {**old, "unscored_since": min(found[0], since), "unscored_events": events}
    else:
        merged = add_waiting(old, since, events)
    return {**merged, "unscored_spans": [*spans, span][-UNSCORED_SPANS_KEPT:]}


def record_awaiting_model(
    couch: CouchClient,
    db: str,
    entity: Entity,
    stamps: list[str],
    *,
    span: str,
    start: str | None,
    until: str | None,
) -> None:
    """Record that these events (their timestamps), read from [start, until) by the scoring
    task `span`, wait for a model."""
    if not stamps:
        return
    doc = base(
        entity, unscored_since=min(stamps), unscored_events=len(stamps), unscored_spans=[span]
    )

    def merge(old: Doc, new: Doc) -> Doc:
        return merge_awaiting_model(old, new, span=span, start=start, until=until)

    couch.upsert(db, doc, merge=merge)


def clear_waiting(couch: CouchClient, db: str, waiting: Mapping[Entity, Waiting]) -> BulkResult:
    """Clear the waiting events of each entity where they are still exactly `waiting[entity]`
    (events added since stay, for the next sweep)."""

    def merge(old: Doc, new: Doc) -> Doc:
        if waiting_of(old) == waiting.get(new["entity"]):
            return without_waiting(old)
        return old

    return couch.bulk_upsert(db, [base(e) for e in waiting], merge=merge)
