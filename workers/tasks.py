"""The fleet's Celery tasks (train, score, rescore, notify): thin adapters that parse ids, call one
plain function and record the run. The planner tasks that beat sends live in `scheduler/tasks.py`.

Policy per task: queue (by route), retries with exponential backoff and jitter on CouchDB/Redis
unavailability, bounded `max_retries`; the final failure is recorded in the run record.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import redis
from celery import Task
from celery.exceptions import Reject
from kombu.exceptions import OperationalError

from workers import fleet as fleet_module
from workers import scoring, training
from workers.celery_app import app
from workers.couch.errors import RetryableCouchError
from workers.events import MAX_ENTITY_CHARS, entity_problem
from workers.fleet import Fleet
from workers.ids import Entity
from workers.notify import service as notify_service
from workers.settings import RETRY_BACKOFF_MAX_S
from workers.store.runs import Run, save_run

log = logging.getLogger(__name__)
TRANSIENT = (RetryableCouchError, redis.ConnectionError, redis.TimeoutError, OperationalError)


class FleetTask(Task):
    """Base task: retry transient failures, record every outcome in `<prefix>runs`."""

    autoretry_for = TRANSIENT
    retry_backoff = 2
    retry_backoff_max = RETRY_BACKOFF_MAX_S
    retry_jitter = True
    max_retries = 8
    ignore_result = True

    def retry(self, *args: Any, **kwargs: Any) -> Any:
        """Celery drops the message (`Reject(requeue=False)`) when it cannot publish the retry,
        which is exactly when Redis is down: requeue the message instead, so the job survives
        (back in the queue on reconnect, or restored after the visibility timeout)."""
        try:
            return super().retry(*args, **kwargs)
        except Reject as exc:
            if exc.requeue:
                raise
            log.warning(
                "%s[%s]: retry not published (%s), requeueing the message",
                self.name,
                self.request.id,
                type(exc.reason).__name__,
            )
            raise Reject(exc.reason, requeue=True) from None

    def on_failure(self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        run = Run(task=self.name, task_id=task_id, entities=_entities_of(args))
        run.finish("failed", exc)
        save_run(
            fleet_module.current().couch,
            _runs_db(),
            run,
            attempt=self.request.retries + 1,
            worker=self.request.hostname or "",
        )


def _runs_db() -> str:
    return fleet_module.current().settings.db_name("runs")


def _entities_of(args: Any) -> list[Entity]:
    if not args or not isinstance(args[0], list):
        return []
    return [item[0] if isinstance(item, list) else item for item in args[0]]


def recorded(task: Task, entities: list[Entity], body: Callable[[Fleet, Run], Any]) -> Any:
    """Run `body` with a Run record; save it as succeeded/partial, or retrying, or failed."""
    fleet = fleet_module.current()
    run = Run(task=task.name, task_id=task.request.id or "local", entities=entities)
    attempt = task.request.retries + 1
    worker = task.request.hostname or ""
    try:
        value = body(fleet, run)
    except TRANSIENT as exc:
        run.finish("retrying", exc)
        save_run(fleet.couch, fleet.settings.db_name("runs"), run, attempt=attempt, worker=worker)
        raise
    run.finish()
    save_run(fleet.couch, fleet.settings.db_name("runs"), run, attempt=attempt, worker=worker)
    return value


def check_entities(entities: Any) -> list[Entity]:
    """Entity ids from a message: a list of ids that pass the entity-id rule of
    `workers.events.entity_problem` (the one ingest and the planner apply)."""
    if not isinstance(entities, list):
        raise TypeError("entities must be a list")
    for entity in entities:
        problem = entity_problem(entity)
        if problem:
            raise ValueError(f"bad entity id: {problem}")
    return entities


@app.task(name="couchwatch.train_entities", base=FleetTask, bind=True)
def train_entities(self: Task, entities: list[Entity]) -> None:
    """Fit and store one model per entity of the batch."""
    ids = check_entities(entities)
    recorded(
        self,
        ids,
        lambda f, run: training.train_entities(
            f, ids, request_id=self.request.id or "local", run=run, enqueue=send
        ),
    )


@app.task(name="couchwatch.score_entities", base=FleetTask, bind=True)
def score_entities(self: Task, items: list[list[Any]]) -> None:
    """Score each [entity, since, until] of the batch; write anomaly documents."""
    parsed = [(e, s, u) for e, s, u in items]
    check_entities([e for e, _, _ in parsed])
    ids = recorded(
        self,
        [e for e, _, _ in parsed],
        lambda f, run: scoring.score_entities(
            f, parsed, request_id=self.request.id or "local", run=run
        ),
    )
    _enqueue_notify(ids)


@app.task(name="couchwatch.rescore", base=FleetTask, bind=True, ignore_result=False)
def rescore(self: Task, entity: Entity, start: str | None = None, end: str | None = None) -> int:
    """Rescore one entity over [start, end) (ISO 8601 UTC); return anomalies written."""
    check_entities([entity])
    ids = recorded(
        self,
        [entity],
        lambda f, run: scoring.score_entities(
            f, [(entity, start, end)], request_id=self.request.id or "local", run=run
        ),
    )
    _enqueue_notify(ids)
    return len(ids)


NOTIFY_BATCH = 500


def _enqueue_notify(anomaly_ids: list[str]) -> None:
    """Hand the anomalies just written to the notify queue (it dedupes and filters severity)."""
    for start in range(0, len(anomaly_ids), NOTIFY_BATCH):
        send("couchwatch.notify", [anomaly_ids[start : start + NOTIFY_BATCH]])


def check_anomaly_ids(ids: Any) -> list[str]:
    """Anomaly ids from a message: a bounded list of short strings."""
    if not isinstance(ids, list) or len(ids) > 10 * NOTIFY_BATCH:
        raise TypeError("anomaly ids must be a list of at most 5000 ids")
    if not all(isinstance(i, str) and 0 < len(i) <= MAX_ENTITY_CHARS for i in ids):
        raise ValueError("anomaly ids must be non-empty strings of bounded length")
    return ids


@app.task(name="couchwatch.notify", base=FleetTask, bind=True)
def notify(self: Task, anomaly_ids: list[str]) -> None:
    """Create and send the notifications of newly written anomalies (deduplicated)."""
    ids = check_anomaly_ids(anomaly_ids)

    def body(fleet: Fleet, run: Run) -> None:
        result = notify_service.notify_anomalies(
            fleet.couch,
            fleet.settings,
            ids,
            now=datetime.now(UTC),
            channels=notify_service.channels_from_settings(fleet.settings),
            windows=notify_service.windows_for(fleet.settings, fleet.redis),
        )
        run.events_in, run.docs_out = len(ids), result.created
        run.details.update(result.as_dict())

    recorded(self, [], body)


@app.task(name="couchwatch.notify_pending", base=FleetTask, bind=True)
def notify_pending(self: Task) -> None:
    """Send due notifications: digests, retries with backoff, abandoned sends."""

    def body(fleet: Fleet, run: Run) -> None:
        result = notify_service.notify_pending(
            fleet.couch,
            fleet.settings,
            now=datetime.now(UTC),
            channels=notify_service.channels_from_settings(fleet.settings),
            windows=notify_service.windows_for(fleet.settings, fleet.redis),
        )
        run.docs_out = result.sent
        run.details.update(result.as_dict())

    recorded(self, [], body)


def send(name: str, args: list[Any]) -> str:
    """Enqueue task `name` with `args` by name (no task code imported); return its id."""
    return str(app.send_task(name, args=args).id)
