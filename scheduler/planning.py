"""Planners run by beat: which entities to score (from `_changes`) and which to train.

`plan_scoring` reads the events database's `_changes` feed from a checkpoint kept in a `_local`
document (the opaque `seq`), groups new events by entity, updates the entity registry, enqueues
scoring batches, and only then advances the checkpoint. Its cost grows with the number of new
events, never with history. Before any population profile exists (a fresh deployment) an entity
without a model cannot be scored: its events are recorded on its registry document as waiting
for a model instead of being enqueued (`workers/unscored.py` says what becomes of them).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import islice
from typing import Any

import redis

from workers.events import Rejection, canonical_timestamp, entity_problem, validate_event
from workers.fleet import Fleet
from workers.ids import Entity, short_hash
from workers.store import population as population_store
from workers.store import registry
from workers.store.events import iter_entity_events
from workers.store.quarantine import quarantine_doc
from workers.store.registry import waiting_of
from workers.store.runs import Run, describe
from workers.training import pending_key
from workers.unscored import population_ready, score_waiting

log = logging.getLogger(__name__)

CHECKPOINT = "couchwatch-plan-scoring"
PLAN_SCORING_LOCK = "couchwatch:lock:plan_scoring"
PAGES_PER_FLUSH = 20
ScoreItem = list[Any]  # [entity, since, until]
Enqueue = Callable[[str, list[Any]], str]


@dataclass
class PlanResult:
    events: int = 0
    entities: int = 0
    batches: int = 0
    quarantined: int = 0
    pages: int = 0
    task_ids: list[str] = field(default_factory=list)
    # entity ids refused by the entity-id rule (registered before it existed, or asked for):
    # printable form -> reason; never enqueued
    skipped: dict[str, str] = field(default_factory=dict)
    # plan_scoring: events of entities that nothing can score yet (no model, no population),
    # recorded on their registry documents as waiting for a model instead of enqueued
    deferred_entities: int = 0
    deferred_events: int = 0
    # plan_training: scoring enqueued for waiting events of entities that have a model now
    waiting_entities: int = 0
    waiting_events: int = 0
    score_task_ids: list[str] = field(default_factory=list)

    def record_scoring(self, run: Run) -> None:
        """This scoring plan's figures in its run record."""
        run.events_in, run.docs_out = self.events, self.batches
        run.details["task_ids"] = self.task_ids
        run.details.update(entities=self.entities, pages=self.pages, quarantined=self.quarantined)
        if self.deferred_entities:
            run.details["unscored_deferred"] = {
                "entities": self.deferred_entities,
                "events": self.deferred_events,
            }


def batches(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def plan_scoring(fleet: Fleet, enqueue: Enqueue, *, max_pages: int = 1000) -> PlanResult:
    """Enqueue `score_entities` batches for every entity with events since the checkpoint."""
    settings, couch = fleet.settings, fleet.couch
    db = settings.events_db
    checkpoint = couch.get_local(db, CHECKPOINT) or {}
    since = str(checkpoint.get("seq", "0"))
    result = PlanResult()
    now = fleet.now()
    earliest: dict[Entity, str] = {}
    counts: dict[Entity, int] = {}
    flush_since = since
    scorable: list[bool] = []  # whether a population exists: asked once, at the first flush
    for page_number in range(1, max_pages + 1):
        page = couch.changes(db, since=since, limit=settings.couchwatch_changes_page_size)
        last_page = not page.results or page_number == max_pages
        if page.results:
            result.pages += 1
            _collect(fleet, page.results, counts, earliest, now, result)
            since = page.last_seq
        # Enqueue every few pages and at the end; the checkpoint moves only after enqueueing.
        if last_page or page_number % PAGES_PER_FLUSH == 0:
            if counts:
                span = short_hash("changes", flush_since, since)
                if not scorable:
                    scorable.append(population_ready(fleet))
                _flush(fleet, enqueue, counts, earliest, now, result, span, defer=not scorable[0])
                counts, earliest, flush_since = {}, {}, since
            if result.pages:
                couch.put_local(db, CHECKPOINT, {"seq": since, "at": canonical_timestamp(now)})
        if last_page:
            break
    return result


def _collect(
    fleet: Fleet,
    changes: list[dict[str, Any]],
    counts: dict[Entity, int],
    earliest: dict[Entity, str],
    now: datetime,
    result: PlanResult,
) -> None:
    """Group a page of changes by entity; quarantine documents that are not valid events."""
    settings = fleet.settings
    bad: list[dict[str, Any]] = []
    for change in changes:
        doc = change.get("doc") or {}
        if change.get("deleted") or str(change.get("id", "")).startswith("_design/"):
            continue
        checked = validate_event(doc, entity_field=settings.entity_field, now=now)
        if isinstance(checked, Rejection):
            raw = str({k: v for k, v in doc.items() if k != "_rev"}).encode()[:4096]
            quarantined = quarantine_doc(0, raw, checked.reason, settings.events_db, now)
            # the raw text is cut at 4 KB, maybe before `_id`: name the document it came from
            bad.append({**quarantined, "event_id": change.get("id")})
            continue
        entity, stamp = doc[settings.entity_field], checked["timestamp"]
        counts[entity] = counts.get(entity, 0) + 1
        if entity not in earliest or stamp < earliest[entity]:
            earliest[entity] = stamp
    if bad:
        fleet.couch.bulk_upsert(settings.db_name("quarantine"), bad)
        result.quarantined += len(bad)


def _flush(
    fleet: Fleet,
    enqueue: Enqueue,
    counts: dict[Entity, int],
    earliest: dict[Entity, str],
    now: datetime,
    result: PlanResult,
    span: str,
    *,
    defer: bool = False,
) -> None:
    """Update the registry and enqueue scoring batches for the collected entities (but for
    those whose events the registry now holds as waiting for a model)."""
    deferred = update_registry(fleet, counts, earliest, now, span, defer=defer)
    items: list[ScoreItem] = [[e, s, None] for e, s in earliest.items() if e not in deferred]
    for batch in batches(items, fleet.settings.couchwatch_batch_size):
        result.task_ids.append(enqueue("couchwatch.score_entities", [batch]))
        result.batches += 1
    result.events += sum(counts.values())
    result.entities += len(counts)
    result.deferred_entities += len(deferred)
    result.deferred_events += sum(counts[e] for e in deferred)


def update_registry(
    fleet: Fleet,
    counts: dict[Entity, int],
    earliest: dict[Entity, str],
    now: datetime,
    span: str,
    *,
    defer: bool = False,
) -> set[Entity]:
    """Add these changes' counts to each entity's registry document (`registry.record_seen`).

    `span` names the `_changes` range counted (a hash of its start and end seq): a replayed range
    (a checkpoint written back, a planner that died before checkpointing) is not counted twice.
    With `defer` (no population profile), returns the entities whose events now wait for a
    model and must not be enqueued.
    """
    return registry.record_seen(
        fleet.couch,
        fleet.settings.db_name("models"),
        counts,
        earliest,
        seen_at=canonical_timestamp(now),
        span=span,
        defer=defer,
    )


def plan_scoring_locked(fleet: Fleet, enqueue: Enqueue, *, wait_s: float) -> PlanResult | None:
    """`plan_scoring` under the planners' Redis lock, so beat's pass and an operator's never
    run at once; None when another pass held the lock for longer than `wait_s`."""
    lock = fleet.redis.lock(PLAN_SCORING_LOCK, timeout=600, blocking_timeout=wait_s)
    if not lock.acquire(blocking=wait_s > 0):
        return None
    try:
        return plan_scoring(fleet, enqueue)
    finally:
        with contextlib.suppress(redis.exceptions.LockError):  # expired meanwhile
            lock.release()


def iter_registry(fleet: Fleet) -> Iterator[dict[str, Any]]:
    """Every entity registry document, in entity order (paged on the index)."""
    yield from registry.iter_entries(fleet.couch, fleet.settings.db_name("models"))


def due_for_training(
    entry: dict[str, Any],
    *,
    now: datetime,
    retrain_after_s: float,
    min_new_events: int,
    max_failures: int = 5,
) -> bool:
    """No model, a model flagged for retraining (unloadable), a model older than the retrain
    interval, or enough new events since — unless training this entity already failed
    `max_failures` times in a row (then only an explicit `train --entity` or `--force` retries;
    the errors stay on its registry document and in its run records)."""
    if int(entry.get("train_failures", 0)) >= max_failures:
        return False
    if not entry.get("model_version") or entry.get("needs_retrain"):
        return True
    trained = entry.get("last_trained_at")
    if not trained or trained < canonical_timestamp(now - timedelta(seconds=retrain_after_s)):
        return True
    return int(entry.get("events_since_training", 0)) >= min_new_events


def plan_training(
    fleet: Fleet, enqueue: Enqueue, *, entities: list[Entity] | None = None, force: bool = False
) -> PlanResult:
    """Enqueue `train_entities` batches for due entities (or the given ones).

    An entity already enqueued and not yet trained is not enqueued again (a Redis marker), so two
    planners or two beats never double the training work. The population profile used for cold
    start and smoothing is (re)built first when missing or stale. Reading the registry, it also
    enqueues scoring of the events still waiting for a model (`workers/unscored.py`) of entities
    it does not train now: those with a usable model (a scoring task raced their training, or a
    crash came between enqueueing and clearing) and, once a population exists, those whose
    training failed too often (scored cold-start).
    """
    settings = fleet.settings
    now = fleet.now()
    ensure_population(fleet, now)
    waiting: dict[Entity, tuple[str, int]] = {}
    modeled: set[Entity] = set()  # the waiting ones that have a model
    if entities is None:
        entities = []
        for e in iter_registry(fleet):
            if force or due_for_training(
                e,
                now=now,
                retrain_after_s=settings.couchwatch_retrain_after_s,
                min_new_events=settings.couchwatch_retrain_min_new_events,
                max_failures=settings.couchwatch_max_train_failures,
            ):
                entities.append(e["entity"])
            found = waiting_of(e)
            if found and not e.get("needs_retrain"):
                waiting[e["entity"]] = found
                if e.get("model_version"):
                    modeled.add(e["entity"])
    usable, skipped = split_usable(entities)
    ttl = settings.couchwatch_train_pending_ttl_s
    fresh = [e for e in usable if fleet.redis.set(pending_key(e), "1", nx=True, ex=ttl)]
    result = PlanResult(entities=len(fresh), skipped=skipped)
    for batch in batches(fresh, settings.couchwatch_batch_size):
        result.task_ids.append(enqueue("couchwatch.train_entities", [batch]))
        result.batches += 1
    # an entity due for training has its waiting events handled by that training; one that is
    # not (its training failed too often) is scored against the population, once there is one
    training = set(usable)
    sweep = {e: w for e, w in waiting.items() if e not in training and not entity_problem(e)}
    if any(e not in modeled for e in sweep) and not population_ready(fleet):
        sweep = {e: w for e, w in sweep.items() if e in modeled}
    result.score_task_ids = score_waiting(fleet, sweep, enqueue)
    result.waiting_entities = len(sweep)
    result.waiting_events = sum(n for _, n in sweep.values())
    return result


def split_usable(entities: list[Entity]) -> tuple[list[Entity], dict[str, str]]:
    """The entity ids that pass the entity-id rule, and the others (as `ascii()` text, safe in
    a run record or a log line) with the reason. One bad id never stops the others."""
    usable: list[Entity] = []
    skipped: dict[str, str] = {}
    for entity in entities:
        problem = entity_problem(entity)
        if problem:
            skipped[ascii(entity)[:300]] = problem
            log.warning("entity %s skipped: %s", ascii(entity)[:300], problem)
        else:
            usable.append(entity)
    return usable, skipped


def ensure_population(fleet: Fleet, now: datetime) -> bool:
    """Build the population profile from a sample of entities when missing or stale."""
    from workers import detection  # heavy (pandas); only planners on workers import it

    db = fleet.settings.db_name("models")
    current = population_store.get(fleet.couch, db)
    stale_before = canonical_timestamp(
        now - timedelta(seconds=fleet.settings.couchwatch_retrain_after_s)
    )
    fresh = current is not None and current.get("built_at", "") >= stale_before
    if fresh and detection.population_is_current(current):
        return False
    sample: list[Entity] = []
    for entry in iter_registry(fleet):
        if entity_problem(entry.get("entity")):  # registered before the entity-id rule
            continue
        sample.append(entry["entity"])
        if len(sample) >= fleet.settings.couchwatch_population_sample:
            break
    if not sample:
        return False
    # a profile of the population, not a census: the first events of each sampled entity's
    # history window are enough, and reading all of them would read the fleet's history twice
    cap = fleet.settings.couchwatch_population_events_per_entity
    since = canonical_timestamp(now - timedelta(days=fleet.settings.couchwatch_history_days))
    by_entity = [
        list(
            islice(
                iter_entity_events(
                    fleet.couch, fleet.settings, e, start=since, page_size=cap, now=now
                ),
                cap,
            )
        )
        for e in sample
    ]
    events = [ev for mine in by_entity for ev in mine]
    field = fleet.settings.entity_field
    try:
        population = detection.make_population(events, entity_field=field, config=fleet.engine)
    except Exception:  # a poison entity must not stop training for the whole fleet: drop it
        events = [
            ev
            for mine in by_entity
            if _population_ok(detection, mine, field, fleet.engine)
            for ev in mine
        ]
        if not events:
            return False
        population = detection.make_population(events, entity_field=field, config=fleet.engine)
    population_store.save(
        fleet.couch,
        db,
        population,
        built_at=canonical_timestamp(now),
        entities=len(sample),
        events=len(events),
    )
    return True


def _population_ok(
    detection: Any, events: list[dict[str, Any]], field: str, config: Any = None
) -> bool:
    """Whether one entity's events build a population profile on their own."""
    try:
        detection.make_population(events, entity_field=field, config=config)
    except Exception as exc:
        entity = events[0].get(field) if events else None
        log.warning("entity %r left out of the population profile: %s", entity, describe(exc))
        return False
    return True
