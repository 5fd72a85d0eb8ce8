"""Events that wait for a model, and what becomes of them once the entity has one.

An entity without a usable model is scored against the population profile (cold start). Before
any profile exists (a fresh deployment: nothing trained yet) nothing can score it, and its
events are never silently dropped: the planner (or a scoring task that finds no model) records
them on the entity's registry document, `unscored_since` (earliest timestamp) and
`unscored_events` (how many), and enqueues no scoring for them. When the entity is trained:

- its **first** model: the waiting events are **kept as history** by default. They are what the
  first model learned from (those within `COUCHWATCH_HISTORY_DAYS`), not scored; the training
  run record lists them (`details.kept_as_history`, per entity, and `kept_as_history_events`)
  and the registry keeps the count (`history_kept`). With `COUCHWATCH_SCORE_FIRST_HISTORY=true`
  they are scored with the new model instead (in sample).
- a **later** model (the old one could not be loaded and no profile existed): they are scored.

Scoring is enqueued first and the registry fields are cleared afterwards, only where nothing was
added in between, so a failure in between scores them twice (idempotent), never zero times.
`plan_training` also sweeps the registry for entities with a usable model that still hold
waiting events and enqueues their scoring.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from workers.fleet import Fleet, registry_id
from workers.ids import Entity

Doc = dict[str, Any]
Enqueue = Callable[[str, list[Any]], str]
Waiting = tuple[str, int]  # (unscored_since, unscored_events)
FIELDS = ("unscored_since", "unscored_events")
SPANS_KEPT = 20


def waiting_of(doc: Doc | None) -> Waiting | None:
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
    return {k: v for k, v in doc.items() if k not in FIELDS}


def kept_as_history(doc: Doc, events: int) -> Doc:
    """`doc` with its waiting events counted as the first model's history."""
    return {**without_waiting(doc), "history_kept": int(doc.get("history_kept") or 0) + events}


def population_ready(fleet: Fleet) -> bool:
    """Whether a current population profile exists (then any entity can be scored)."""
    from workers import detection  # heavy (pandas); only planners and workers get here

    db = fleet.settings.db_name("models")
    return detection.population_is_current(fleet.couch.get(db, detection.POPULATION_ID))


def await_model(
    fleet: Fleet,
    entity: Entity,
    stamps: list[str],
    *,
    span: str,
    start: str | None,
    until: str | None,
) -> None:
    """Record on the registry that these events (their timestamps), read from [start, until)
    by a scoring task that found no usable model and no population, wait for a model. `span`
    (the task id) makes a redelivered task count them once; a read from at or before the
    earliest waiting event to the end covers every event already waiting, so they are counted
    once (a rescore of an entity's whole history)."""
    if not stamps:
        return
    since = min(stamps)

    def merge(old: Doc, new: Doc) -> Doc:
        spans = list(old.get("unscored_spans", []))
        if span in spans:
            return old
        found = waiting_of(old)
        if found and until is None and (start is None or start <= found[0]):
            merged = {**old, "unscored_since": min(found[0], since), "unscored_events": len(stamps)}
        else:
            merged = add_waiting(old, since, len(stamps))
        return {**merged, "unscored_spans": [*spans, span][-SPANS_KEPT:]}

    fleet.couch.upsert(
        fleet.settings.db_name("models"),
        {
            "_id": registry_id(entity),
            "type": "entity",
            "entity": entity,
            "unscored_since": since,
            "unscored_events": len(stamps),
            "unscored_spans": [span],
        },
        merge=merge,
    )


def score_waiting(fleet: Fleet, waiting: dict[Entity, Waiting], enqueue: Enqueue) -> list[str]:
    """Enqueue scoring of each entity's waiting events (from `unscored_since` on), then clear
    them on the registry where they are still exactly these; return the task ids."""
    if not waiting:
        return []
    items = [[entity, since, None] for entity, (since, _) in waiting.items()]
    size = fleet.settings.couchwatch_batch_size
    ids = [
        enqueue("couchwatch.score_entities", [items[i : i + size]])
        for i in range(0, len(items), size)
    ]

    def merge(old: Doc, new: Doc) -> Doc:
        if waiting_of(old) == waiting.get(new["entity"]):
            return without_waiting(old)
        return old  # more events were added since: the next sweep scores them

    docs = [{"_id": registry_id(e), "type": "entity", "entity": e} for e in waiting]
    fleet.couch.bulk_upsert(fleet.settings.db_name("models"), docs, merge=merge)
    return ids
