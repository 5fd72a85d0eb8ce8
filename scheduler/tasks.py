"""The planner tasks beat sends (`plan_scoring`, `plan_training`): each claims its schedule slot
in Redis, then calls the plain planner of `scheduler/planning.py`. They share the fleet's task
policy (`workers.tasks.FleetTask`: retries, run records) and enqueue the fleet's tasks by name.
"""

from __future__ import annotations

import time

from celery import Task

from scheduler.beat import slot_key
from scheduler.planning import plan_scoring_locked
from scheduler.planning import plan_training as plan_training_fn
from workers.celery_app import app
from workers.events import entity_problem
from workers.fleet import Fleet
from workers.ids import Entity
from workers.store.runs import Run
from workers.tasks import FleetTask, recorded, send


def _claim_slot(fleet: Fleet, name: str, interval_s: float) -> bool:
    return bool(
        fleet.redis.set(
            slot_key(name, interval_s, time.time()), "1", nx=True, ex=int(interval_s * 2) + 1
        )
    )


@app.task(name="couchwatch.plan_scoring", base=FleetTask, bind=True)
def plan_scoring(self: Task, force: bool = False) -> None:
    """Enqueue scoring for entities with new events (once per schedule slot)."""

    def body(fleet: Fleet, run: Run) -> None:
        interval = fleet.settings.couchwatch_score_interval_s
        if not force and not _claim_slot(fleet, "plan_scoring", interval):
            run.details["skipped"] = "slot already planned (another beat?)"
            return
        result = plan_scoring_locked(fleet, send, wait_s=0)
        if result is None:
            run.details["skipped"] = "another planner is running"
            return
        result.record_scoring(run)

    recorded(self, [], body)


@app.task(name="couchwatch.plan_training", base=FleetTask, bind=True)
def plan_training(self: Task, entities: list[Entity] | None = None, force: bool = False) -> None:
    """Enqueue training for entities that are due (or the given ones)."""

    def body(fleet: Fleet, run: Run) -> None:
        interval = fleet.settings.couchwatch_train_check_interval_s
        if entities is None and not force and not _claim_slot(fleet, "plan_training", interval):
            run.details["skipped"] = "slot already planned (another beat?)"
            return
        result = plan_training_fn(fleet, send, entities=entities, force=force)
        run.docs_out = result.batches
        run.details.update(entities=result.entities, task_ids=result.task_ids)
        if result.score_task_ids:
            run.details["unscored_swept"] = {
                "entities": result.waiting_entities,
                "events": result.waiting_events,
                "task_ids": result.score_task_ids,
            }
        if result.skipped:
            run.details["skipped_entities"] = result.skipped

    if entities is not None and not isinstance(entities, list):
        raise TypeError("entities must be a list")
    recorded(self, [e for e in entities or [] if not entity_problem(e)], body)
