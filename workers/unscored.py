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

from workers.fleet import Fleet
from workers.ids import Entity
from workers.store import population, registry
from workers.store.registry import Waiting, waiting_of

__all__ = ["Waiting", "await_model", "population_ready", "score_waiting", "waiting_of"]

Enqueue = Callable[[str, list[Any]], str]


def population_ready(fleet: Fleet) -> bool:
    """Whether a current population profile exists (then any entity can be scored)."""
    return population.is_current(fleet.couch, fleet.settings.db_name("models"))


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
    registry.record_awaiting_model(
        fleet.couch,
        fleet.settings.db_name("models"),
        entity,
        stamps,
        span=span,
        start=start,
        until=until,
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
    registry.clear_waiting(fleet.couch, fleet.settings.db_name("models"), waiting)
    return ids
