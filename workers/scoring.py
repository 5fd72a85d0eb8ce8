"""Scoring: for each entity, its new events → features → score → anomaly documents.

Idempotent: anomaly `_id`s are deterministic and `store.anomalies.merge_anomaly` keeps human
review status, so scoring the same events twice writes the same documents. Events that nothing
can score yet (no usable model, no population profile) are recorded on the entity's registry
document as waiting for a model (`workers/unscored.py`), never dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from functools import cache
from typing import Any

import pandas as pd
from celery.exceptions import SoftTimeLimitExceeded

from workers import detection, incidents
from workers.couch.errors import RetryableCouchError
from workers.engine.errors import InsufficientHistoryError, ModelLoadError, UnsafeModelError
from workers.events import canonical_timestamp
from workers.fleet import Fleet
from workers.ids import Entity
from workers.settings import Settings
from workers.store import anomalies as anomaly_store
from workers.store import registry
from workers.store.events import iter_entity_events
from workers.store.models import version_doc_id
from workers.store.runs import Run, describe
from workers.training import load_population
from workers.unscored import await_model


def window_floor(timestamp: str, window: str) -> str:
    """Start of the scoring window (`window`: the engine's, `COUCHWATCH_WINDOW`, e.g. `15min`)
    that holds `timestamp` (canonical UTC text in and out). The one window rule: scoring, the
    timeline's bins and the planner's ranges all floor with it."""
    return canonical_timestamp(pd.Timestamp(timestamp).floor(window).to_pydatetime())


def context_start(start: str | None, train_end: str | None, settings: Settings) -> str | None:
    """Where to start reading an entity's events when scoring from `start`.

    Events after the model's training and before `start` (at most
    `COUCHWATCH_SCORE_CONTEXT_S` back) are read as context: they update the time-of-day and
    novelty profiles, so a new device seen in the previous pass is not new again.
    """
    if start is None:
        return None
    back = canonical_timestamp(
        pd.Timestamp(start).to_pydatetime() - timedelta(seconds=settings.couchwatch_score_context_s)
    )
    return max(back, train_end) if train_end and train_end < start else min(back, start)


def score_entities(
    fleet: Fleet,
    items: list[tuple[Entity, str | None, str | None]],
    *,
    request_id: str,
    run: Run,
) -> list[str]:
    """Score each (entity, since, until) and upsert anomaly documents; return their ids.

    `since` is floored to its window so the window is scored whole; None means all history.
    """
    owner: dict[str, Entity] = {}  # anomaly id → entity, written in one bulk request
    docs: list[dict[str, Any]] = []
    heads = fleet.models.heads([entity for entity, _, _ in items])
    population = cache(lambda: load_population(fleet))  # read once, only when needed
    for entity, since, until in items:
        start = window_floor(since, fleet.engine.window) if since else None
        try:
            model, model_id, version = model_for(
                fleet, entity, heads.get(entity), population, request_id, run
            )
            read_from = context_start(start, model.train_end, fleet.settings)
            events = list(
                iter_entity_events(
                    fleet.couch, fleet.settings, entity, start=read_from, end=until, now=fleet.now()
                )
            )
            new_events = sum(1 for e in events if start is None or e["timestamp"] >= start)
            run.events_in += new_events
            if len(events) > new_events:  # read as context: profiles, not scored again
                context = run.details.setdefault("context_events", 0)
                run.details["context_events"] = context + len(events) - new_events
            rows = detection.score_result(model, events, score_from=start)
            if fleet.on_scored is not None:  # an observer (evaluation) sees every scored row
                fleet.on_scored(entity, rows)
            scored = detection.anomalies(rows, model_id, version)
            docs += scored
            owner.update({d["_id"]: entity for d in scored})
        except (RetryableCouchError, SoftTimeLimitExceeded):  # the batch's, not the entity's
            raise
        except InsufficientHistoryError:  # nothing can score it yet: the events wait
            read = iter_entity_events(
                fleet.couch, fleet.settings, entity, start=start, end=until, now=fleet.now()
            )
            waiting = [str(e["timestamp"]) for e in read]
            await_model(
                fleet, entity, waiting, span=f"score-{request_id}", start=start, until=until
            )
            run.details.setdefault("awaiting_history", []).append(entity)
            run.details["awaiting_history_events"] = run.details.get(
                "awaiting_history_events", 0
            ) + len(waiting)
        except Exception as exc:  # a poison entity: record it, carry on with the rest
            run.fail_entity(entity, exc)
    result = anomaly_store.upsert_all(fleet.couch, fleet.settings.db_name("anomalies"), docs)
    refused: dict[Entity, list[str]] = {}
    for row in result.failed:
        refused.setdefault(owner[row.id], []).append(str(row.reason))
    for entity, reasons in refused.items():
        run.fail_entity(entity, RuntimeError(f"{len(reasons)} anomalies refused: {reasons[0]}"))
    written = [d["_id"] for d in docs if owner[d["_id"]] not in refused]
    run.docs_out += len(written)
    kept = set(written)
    incidents.after_scoring(fleet.couch, fleet.settings, [d for d in docs if d["_id"] in kept], run)
    return written


def model_for(
    fleet: Fleet,
    entity: Entity,
    head: dict[str, Any] | None,
    population: Callable[[], detection.Population | None],
    request_id: str,
    run: Run,
) -> tuple[detection.EntityModel, str, int]:
    """The entity's active model (cached per process), or a cold-start model.

    An entity without a loadable model is scored against the population (confidence < 1);
    before any population exists it waits for its first training (recorded in the run). A
    stored model from another library version, or one refused as unsafe, is replaced by a
    cold-start model now and flagged for retraining on the entity's registry document.
    """
    if head is not None:
        version = int(head["active_version"])
        cached = fleet.cache.get(entity, version)
        doc_id = version_doc_id(head, version)
        if cached is not None and doc_id is not None:  # the id `load` gives: the same anomalies
            return cached, doc_id, version
        stored = fleet.models.load(entity, version, head=head)
        if stored is not None:
            try:
                model = detection.load_model(stored.payload)
            except ModelLoadError as exc:
                request_retrain(fleet, entity, describe(exc))
                key = "unsafe_models" if isinstance(exc, UnsafeModelError) else "retrain_requested"
                run.details.setdefault(key, []).append(entity)
            else:
                fleet.cache.put(entity, version, model)
                return model, stored.doc_id, version
    profile = population()
    if profile is None:
        raise InsufficientHistoryError(f"{entity!r} has no model yet and no population profile")
    model = detection.fit(
        entity,
        [],
        entity_field=fleet.settings.entity_field,
        population=profile,
        reviewed=[],
        config=fleet.engine,
    )
    return model, f"cold-start-{request_id}", 0


def request_retrain(fleet: Fleet, entity: Entity, reason: str) -> None:
    """Flag the entity on its registry document; the next `plan_training` retrains it."""
    registry.request_retrain(fleet.couch, fleet.settings.db_name("models"), entity, reason)
