"""Run records: one document per task execution in `<prefix>runs`, so nothing fails silently.

`_id` is `run-<task id>`: a redelivered or retried task updates the same record (attempts grow).
"""

from __future__ import annotations

import logging
import socket
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from workers.couch.client import CouchClient
from workers.couch.errors import CouchError
from workers.events import canonical_timestamp
from workers.ids import Entity

log = logging.getLogger(__name__)
MAX_ERROR_CHARS = 500
BY_FINISHED = "by-finished"  # [finished_at]: the newest runs first


@dataclass
class Run:
    """What one task execution did. Counts: `events_in` read, `docs_out` written."""

    task: str
    task_id: str
    entities: list[Entity] = field(default_factory=list)
    events_in: int = 0
    docs_out: int = 0
    outcome: str = "running"  # running | succeeded | partial | retrying | failed
    error: str | None = None
    entity_errors: dict[str, str] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    started_at: str = field(default_factory=lambda: canonical_timestamp(datetime.now(UTC)))

    def fail_entity(self, entity: Entity, exc: BaseException) -> None:
        self.entity_errors[str(entity)] = describe(exc)

    def finish(self, outcome: str | None = None, error: BaseException | None = None) -> None:
        if error is not None:
            self.error = describe(error)
        if outcome:
            self.outcome = outcome
        elif self.entity_errors:
            self.outcome = "partial" if len(self.entity_errors) < len(self.entities) else "failed"
        else:
            self.outcome = "succeeded"

    def document(self, attempt: int) -> dict[str, Any]:
        return {
            "_id": run_id(self.task_id),
            "type": "run",
            "task": self.task,
            "task_id": self.task_id,
            "entities": self.entities[:1000],
            "entity_count": len(self.entities),
            "events_in": self.events_in,
            "docs_out": self.docs_out,
            "outcome": self.outcome,
            "error": self.error,
            "entity_errors": dict(list(self.entity_errors.items())[:200]),
            "details": self.details,
            "attempt": attempt,
            "hostname": socket.gethostname(),
            "started_at": self.started_at,
            "finished_at": canonical_timestamp(datetime.now(UTC)),
            "duration_s": round(time.monotonic() - self.started, 3),
        }


def run_id(task_id: str) -> str:
    """The run record id of a task execution (a redelivery updates the same record)."""
    return f"run-{task_id}"


def describe(exc: BaseException) -> str:
    """One line naming the error class and message (messages never carry credentials)."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:MAX_ERROR_CHARS]


def save_run(client: CouchClient, runs_db: str, run: Run, *, attempt: int, worker: str) -> None:
    """Upsert the run record; a CouchDB outage here is logged, the task outcome stands."""
    doc = run.document(attempt)
    doc["worker"] = worker
    try:
        client.upsert(runs_db, doc)
    except CouchError as exc:
        log.error("could not record run %s (%s): %s", run.task_id, run.outcome, describe(exc))


def recent_runs(client: CouchClient, runs_db: str, *, last: int) -> list[dict[str, Any]]:
    """The `last` most recent run records, newest first."""
    docs, _ = client.find_page(
        runs_db,
        {
            "selector": {"finished_at": {"$gt": None}},
            "sort": [{"finished_at": "desc"}],
            "use_index": [BY_FINISHED, BY_FINISHED],
            "limit": last,
        },
    )
    return docs
