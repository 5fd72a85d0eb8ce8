"""Training: for each entity, history → features → fit → model version in the model store.

Events that waited for the entity's model (`workers/unscored.py`) are settled when it is trained:
kept as the first model's history (the run record counts them) or enqueued for scoring.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded

from workers import detection
from workers.couch.errors import CouchError, RetryableCouchError
from workers.events import canonical_timestamp
from workers.fleet import Fleet
from workers.ids import Entity, entity_key
from workers.store import anomalies as anomaly_store
from workers.store import population as population_store
from workers.store import registry
from workers.store.events import training_history
from workers.store.registry import Waiting
from workers.store.runs import Run, describe
from workers.training_history import History, read_history, save_history
from workers.unscored import score_waiting

Enqueue = Callable[[str, list[Any]], str]


def pending_key(entity: Entity) -> str:
    """Redis key marking an entity's training as enqueued (dedupes planners and beats)."""
    return f"couchwatch:train-pending:{entity_key(entity)}"


def train_entities(
    fleet: Fleet, entities: list[Entity], *, request_id: str, run: Run, enqueue: Enqueue
) -> None:
    """Fit and store a model for each entity. One entity's failure never stops the others.

    CouchDB/Redis unavailability propagates (the task retries the whole, idempotent, batch).
    `enqueue` sends the scoring of events that waited for these models (`workers/unscored.py`).
    """
    settings = fleet.settings
    population = load_population(fleet)
    ttl = settings.celery_task_time_limit_s + 60
    now = fleet.now()
    trained: dict[Entity, int] = {}
    entries = fleet.couch.get_many(
        settings.db_name("models"), [registry.registry_id(e) for e in entities]
    )
    reviews: dict[Entity, bool] = {}
    seen_at_read = {
        e: int((entries.get(registry.registry_id(e)) or {}).get("events_seen") or 0)
        for e in entities
    }
    for entity in entities:
        with fleet.training_lock(entity, request_id, ttl) as got:
            if not got:
                run.details.setdefault("skipped_locked", []).append(entity)
                continue
            try:
                entry = entries.get(registry.registry_id(entity))
                version, reviewed = train_one(
                    fleet,
                    entity,
                    request_id,
                    population,
                    run,
                    now,
                    read_reviews=registry.may_have_reviews(entry),
                    entry=entry,
                )
            except (RetryableCouchError, SoftTimeLimitExceeded):  # the batch's, not the entity's
                raise
            except Exception as exc:  # a poison entity: record it, carry on with the rest
                run.fail_entity(entity, exc)
                record_failure(fleet, entity, run.entity_errors[str(entity)])
                continue
            run.details.setdefault("versions", {})[str(entity)] = version
            trained[entity] = version
            reviews[entity] = reviewed
    waiting = mark_trained(fleet, trained, now, run, reviews, seen_at_read)
    if waiting:
        ids = score_waiting(fleet, waiting, enqueue)
        run.details["unscored_enqueued"] = {str(e): n for e, (_, n) in waiting.items()}
        run.details["unscored_enqueued_events"] = sum(n for _, n in waiting.values())
        run.details["unscored_task_ids"] = ids
    if trained:  # only now may a planner enqueue these entities again
        fleet.redis.delete(*(pending_key(entity) for entity in trained))


def train_one(
    fleet: Fleet,
    entity: Entity,
    request_id: str,
    population: detection.Population | None,
    run: Run,
    now: datetime,
    *,
    read_reviews: bool = True,
    entry: Mapping[str, Any] | None = None,
) -> tuple[int, bool]:
    """Fit and store one entity's model; (its version, whether it has reviewed anomalies).

    Without `read_reviews` (the registry knows it has none) the reviewed-anomaly query is
    skipped. Without reviewed anomalies the history is its stored summary brought up to date
    (`workers/training_history.py`; `entry` is its registry document as read before the
    training), and the summary fitted is stored for the next retrain; with some, the whole
    history is read, since the feedback names events."""
    settings = fleet.settings
    reviewed = (
        anomaly_store.reviewed(fleet.couch, settings.db_name("anomalies"), entity)
        if read_reviews
        else []
    )
    history: History | None = None
    if reviewed:
        events = training_history(fleet.couch, settings, entity, now=now)
        run.events_in += len(events)
        _count_read(run, "full")
        model = detection.fit(
            entity,
            events,
            entity_field=settings.entity_field,
            population=population,
            reviewed=reviewed,
            config=fleet.engine,
        )
    else:
        history = read_history(fleet, entity, now=now, entry=entry)
        run.events_in += history.events_read
        _count_read(run, history.read)
        if history.why_full:
            run.details.setdefault("full_read_reasons", {})[str(entity)] = history.why_full
        model = detection.fit_summary(
            str(entity),
            history.summary,
            entity_field=settings.entity_field,
            config=fleet.engine,
            population=population,
        )
    payload = detection.dump_model(model)
    meta = {**detection.model_meta(model), "size_bytes": len(payload)}
    version, created = fleet.models.save(entity, request_id, payload, meta)
    run.docs_out += int(created)
    if history is not None:
        try:
            save_history(fleet, entity, history, now=now, version=version)
        except RetryableCouchError:
            raise
        except CouchError as exc:  # the model stands; the next training reads in full
            run.details.setdefault("summary_errors", {})[str(entity)] = describe(exc)
    return version, bool(reviewed)


def _count_read(run: Run, how: str) -> None:
    """Count on the run record how each entity's history was read (full or incremental)."""
    reads = run.details.setdefault("history_reads", {})
    reads[how] = reads.get(how, 0) + 1


def mark_trained(
    fleet: Fleet,
    versions: dict[Entity, int],
    now: datetime,
    run: Run,
    has_reviews: dict[Entity, bool] | None = None,
    read_events_seen: dict[Entity, int] | None = None,
) -> dict[Entity, Waiting]:
    """Record on each entity's registry document that it was trained now (one bulk write).

    Events waiting for a model are settled in the same write: for a first model, by default,
    kept as its history (cleared, counted in `history_kept` and in the run record's
    `kept_as_history`); else (or with `COUCHWATCH_SCORE_FIRST_HISTORY`) they stay until their
    scoring is enqueued, and are returned. A row the server refuses is recorded as that
    entity's failure; its model is stored and active, only the registry's bookkeeping is stale
    until the next training (its waiting events stay, for the planner's sweep).
    """
    result, kept, to_score = registry.record_trained(
        fleet.couch,
        fleet.settings.db_name("models"),
        versions,
        trained_at=canonical_timestamp(now),
        keep_first_history=not fleet.settings.couchwatch_score_first_history,
        has_reviews=has_reviews,
        read_events_seen=read_events_seen,
    )
    by_id = {registry.registry_id(entity): entity for entity in versions}
    for row in result.failed:
        run.fail_entity(by_id[row.id], RuntimeError(f"registry update refused: {row.reason}"))
    if kept:
        run.details["kept_as_history"] = {str(e): n for e, n in kept.items()}
        run.details["kept_as_history_events"] = sum(kept.values())
    return to_score


def record_failure(fleet: Fleet, entity: Entity, error: str) -> None:
    """Count a failed training on the entity's registry document (planning stops after a few)."""
    registry.record_train_failure(fleet.couch, fleet.settings.db_name("models"), entity, error)


def load_population(fleet: Fleet) -> detection.Population | None:
    """The stored population profile (None when missing or of an older format)."""
    return population_store.load(fleet.couch, fleet.settings.db_name("models"))
