"""Scoring: for each entity, its new events → features → score → anomaly documents.

Idempotent: anomaly `_id`s are deterministic and `merge_anomaly` keeps human review status, so
scoring the same events twice writes the same documents.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from celery.exceptions import SoftTimeLimitExceeded

from workers import detection
from workers.couch.errors import RetryableCouchError
from workers.engine.config import EngineConfig
from workers.engine.errors import InsufficientHistoryError, ModelLoadError
from workers.events import canonical_timestamp
from workers.fleet import Fleet
from workers.history import iter_entity_events
from workers.ids import Entity
from workers.runs import Run
from workers.training import load_population

WINDOW = EngineConfig().window


def window_floor(timestamp: str, window: str = WINDOW) -> str:
    """Start of the window that contains `timestamp` (canonical UTC text)."""
    return canonical_timestamp(pd.Timestamp(timestamp).floor(window).to_pydatetime())


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
    written: list[str] = []
    heads = fleet.models.heads([entity for entity, _, _ in items])
    population: detection.Population | None = None
    population_loaded = False
    for entity, since, until in items:
        try:
            head = heads.get(entity)
            if head is None and not population_loaded:
                population, population_loaded = load_population(fleet), True
            model, model_id, version = model_for(fleet, entity, head, population, request_id)
            start = window_floor(since) if since else None
            events = list(iter_entity_events(fleet.couch, fleet.settings, entity,
                                             start=start, end=until))  # fmt: skip
            run.events_in += len(events)
            docs = detection.score(model, events, model_id=model_id, version=version)
            result = fleet.couch.bulk_upsert(
                fleet.settings.db_name("anomalies"), docs, merge=detection.merge_anomaly
            )
            if result.failed:
                first = result.failed[0]
                raise RuntimeError(f"{len(result.failed)} anomalies refused: {first.reason}")
            run.docs_out += len(docs)
            written += [d["_id"] for d in docs]
        except (RetryableCouchError, SoftTimeLimitExceeded):  # the batch's, not the entity's
            raise
        except InsufficientHistoryError:  # nothing to learn from yet; training will catch up
            run.details.setdefault("awaiting_history", []).append(entity)
        except Exception as exc:  # a poison entity: record it, carry on with the rest
            run.fail_entity(entity, exc)
    return written


def model_for(
    fleet: Fleet,
    entity: Entity,
    head: dict[str, Any] | None,
    population: detection.Population | None,
    request_id: str,
) -> tuple[detection.EntityModel, str, int]:
    """The entity's active model (cached per process), or a fresh one when it has none.

    An entity without a model gets a cold-start model against the population (confidence < 1);
    before any population exists it waits for its first training (recorded in the run).
    """
    if head is not None:
        version = int(head["active_version"])
        cached = fleet.cache.get(entity, version)
        if cached is not None:
            return cached, head["_id"], version
        stored = fleet.models.load(entity, version)
        if stored is not None:
            try:
                model = detection.load_model(stored.payload)
            except ModelLoadError:
                model = None  # saved by another library version: refit below
            if model is not None:
                fleet.cache.put(entity, version, model)
                return model, stored.doc_id, version
    if population is None:
        raise InsufficientHistoryError(f"{entity!r} has no model yet and no population profile")
    model = detection.fit(
        entity, [], entity_field=fleet.settings.entity_field, population=population, reviewed=[]
    )
    return model, f"unsaved-{request_id}", 0
