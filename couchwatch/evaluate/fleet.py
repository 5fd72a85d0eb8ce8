"""Run labeled events through the fleet's own code on in-memory twins (`couchwatch evaluate`).

`run_through_fleet` does what the fleet does, in one process, on a `MemoryCouchClient` and an
in-memory Redis, with the fleet's clock set "at" the data: it ingests every event before its
entity's cutoff (`workers.ingest.ingest_stream`), runs the real planners (`plan_scoring`, then
`plan_training`, their tasks recorded instead of sent), runs the real `train_entities` on the
planned batches, ingests the rest, plans scoring again and runs the real `score_entities` on its
batches. The clock of each phase is one second after that phase's last event. Every score
result (all rows, flagged or not) is seen through `Fleet.on_scored`; the anomaly documents are
read back from the anomalies database. So an evaluation measures what the fleet would write.
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from scheduler.planning import plan_scoring, plan_training
from workers.couch.memory import MemoryCouchClient, memory_redis
from workers.couch.schema import ensure_schema
from workers.engine.config import EngineConfig
from workers.engine.evaluation.labels import to_utc
from workers.engine.results import ScoreResult
from workers.fleet import Fleet
from workers.ids import Entity
from workers.ingest import ingest_stream
from workers.scoring import score_entities
from workers.settings import Settings
from workers.store.models import ModelCache, ModelStore
from workers.store.runs import Run
from workers.training import train_entities

Doc = dict[str, Any]
TRAIN_TASK = "couchwatch.train_entities"
SCORE_TASK = "couchwatch.score_entities"
CLOCK_AFTER_LAST_EVENT = timedelta(seconds=1)
_INTERNAL = ("_rev", "_attachments", "_conflicts", "_deleted")


@dataclass
class FleetRun:
    """What the fleet did on one scenario: its anomaly documents and every scored row."""

    anomalies: list[Doc] = field(default_factory=list)
    results: list[tuple[Entity, ScoreResult]] = field(default_factory=list)
    tasks: list[tuple[str, list[Any]]] = field(default_factory=list)
    entity_errors: dict[str, str] = field(default_factory=dict)
    ingested: dict[str, int] = field(default_factory=dict)


class _Clock:
    def __init__(self) -> None:
        self.at: datetime | None = None

    def __call__(self) -> datetime:
        if self.at is None:
            raise RuntimeError("the simulation's clock is not set")
        return self.at


def memory_fleet(settings: Settings, *, config: EngineConfig | None = None) -> Fleet:
    """A `Fleet` on fresh in-memory twins (schema created), its clock unset until a phase."""
    couch = MemoryCouchClient()
    ensure_schema(couch, settings)
    fleet = Fleet(
        settings=settings,
        couch=couch,
        redis=memory_redis(),
        models=ModelStore(
            couch, settings.db_name("models"), keep=settings.couchwatch_model_keep_versions
        ),
        cache=ModelCache(settings.couchwatch_model_cache_size),
        now=_Clock(),
    )
    if config is not None:  # an explicit engine config wins over the settings' one
        fleet.__dict__["engine"] = config.validate()
    return fleet


def run_through_fleet(
    events: Sequence[Mapping[str, Any]],
    cutoffs: Mapping[str, pd.Timestamp],
    *,
    settings: Settings,
    entity_field: str,
    config: EngineConfig | None = None,
) -> FleetRun:
    """Train on the events before each entity's cutoff and score the rest, as the fleet does.

    Returns the anomaly documents the fleet wrote (scores in [0, 1], higher = more unusual)
    and every score result of the scoring phase, per entity.
    """
    if settings.entity_field != entity_field:
        settings = settings.model_copy(update={"couchwatch_entity_field": entity_field})
    fleet = memory_fleet(settings, config=config)
    out = FleetRun()
    fleet.on_scored = lambda entity, result: out.results.append((entity, result))
    train, test = _split(events, cutoffs, entity_field)

    def phase(name: str, part: list[Doc], tasks: list[tuple[str, list[Any]]]) -> None:
        assert isinstance(fleet.now, _Clock)
        fleet.now.at = _after_last(part, fleet.now.at)
        out.ingested[name] = _ingest(fleet, part, name)

        def enqueue(task: str, args: list[Any]) -> str:
            tasks.append((task, args))
            out.tasks.append((task, args))
            return f"{name}-{len(out.tasks)}"

        plan_scoring(fleet, enqueue)
        if name == "train":
            plan_training(fleet, enqueue)

    trainings: list[tuple[str, list[Any]]] = []
    phase("train", train, trainings)
    after_training: list[tuple[str, list[Any]]] = []  # scoring a training enqueues (unscored.py)

    def enqueue(task: str, args: list[Any]) -> str:
        after_training.append((task, args))
        out.tasks.append((task, args))
        return f"train-{len(out.tasks)}"

    for task, args in trainings:
        if task == TRAIN_TASK:
            run = Run(task=task, task_id=uuid.uuid4().hex, entities=list(args[0]))
            train_entities(fleet, list(args[0]), request_id=run.task_id, run=run, enqueue=enqueue)
            out.entity_errors.update(run.entity_errors)
    _score(fleet, after_training, out)
    scorings: list[tuple[str, list[Any]]] = []
    phase("test", test, scorings)
    _score(fleet, scorings, out)
    out.anomalies = list(fleet.couch.iter_all_docs(settings.db_name("anomalies")))
    return out


def _score(fleet: Fleet, tasks: list[tuple[str, list[Any]]], out: FleetRun) -> None:
    """Run the scoring tasks among `tasks`, as a worker would."""
    for task, args in tasks:
        if task == SCORE_TASK:
            items = [(e, since, until) for e, since, until in args[0]]
            run = Run(task=task, task_id=uuid.uuid4().hex, entities=[e for e, _, _ in items])
            score_entities(fleet, items, request_id=run.task_id, run=run)
            out.entity_errors.update(run.entity_errors)


def _split(
    events: Sequence[Mapping[str, Any]], cutoffs: Mapping[str, pd.Timestamp], entity_field: str
) -> tuple[list[Doc], list[Doc]]:
    """Events before their entity's cutoff, and the rest (input order, CouchDB fields dropped)."""
    stamps = to_utc([e.get("timestamp") for e in events], what="timestamp")
    train: list[Doc] = []
    test: list[Doc] = []
    for event, stamp in zip(events, stamps, strict=True):
        doc = {k: v for k, v in event.items() if k not in _INTERNAL}
        cut = cutoffs.get(str(event.get(entity_field)))
        (train if cut is not None and stamp < cut else test).append(doc)
    return train, test


def _after_last(part: list[Doc], previous: datetime | None) -> datetime:
    if not part:
        if previous is None:
            raise ValueError("no events before the cutoffs to train on")
        return previous
    last = to_utc([e.get("timestamp") for e in part], what="timestamp").max()
    at = last.to_pydatetime() + CLOCK_AFTER_LAST_EVENT
    return max(at, previous) if previous is not None else at


def _ingest(fleet: Fleet, part: list[Doc], source: str) -> int:
    """Store the events as a producer's file would be ingested (validation, quarantine)."""
    lines = "".join(json.dumps(e, default=str) + "\n" for e in part).encode()
    report = ingest_stream(
        fleet.couch,
        fleet.settings,
        io.BytesIO(lines),
        fmt="jsonl",
        source=source,
        now=fleet.now(),
    )
    return report.accepted
