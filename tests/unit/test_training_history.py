"""A retrain reads only the days with new events and fits the model a full read would fit.

On the in-memory twins (the fleet's own planning, training and store code): a first training
reads the whole history and stores its summary; after new events (one of them late, dated days
back) the retrain reads from the midnight of the earliest new event only, and stores a model
byte for byte the same as a fleet without summaries trains on the same events.
"""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

import pandas as pd
import pytest

from couchwatch.evaluate.fleet import _ingest, memory_fleet
from scheduler.planning import plan_scoring, plan_training
from tests.unit.engine._synth import START, history
from workers.fleet import Fleet
from workers.settings import Settings
from workers.store import registry, summaries
from workers.store.runs import Run
from workers.training import train_entities

pytestmark = pytest.mark.unit
USERS = ("user0", "user1")
FIRST_DAYS = 10


class Sent(list[tuple[str, list[Any]]]):
    def __call__(self, task: str, args: list[Any]) -> str:
        self.append((task, args))
        return f"task-{len(self)}"


def _events() -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """(the first ten days, the two days after, one late event of day 3 held back)."""
    events = [e for k, u in enumerate(USERS) for e in history(u, days=FIRST_DAYS + 2, seed=k)]
    cut = START + timedelta(days=FIRST_DAYS)
    day3 = [e for e in events if e["user_id"] == "user0" and e["timestamp"][:10] == "2026-03-04"]
    late = day3[len(day3) // 2]
    first = [e for e in events if pd.Timestamp(e["timestamp"]) < cut and e is not late]
    fresh = [e for e in events if pd.Timestamp(e["timestamp"]) >= cut]
    return first, fresh, late


def _at(fleet: Fleet, events: list[dict[str, Any]]) -> None:
    last = pd.Timestamp(max(e["timestamp"] for e in events)).to_pydatetime()
    fleet.now.at = last + timedelta(hours=1)  # type: ignore[attr-defined]


def _train(fleet: Fleet, request_id: str) -> Run:
    run = Run(task="couchwatch.train_entities", task_id=request_id, entities=list(USERS))
    train_entities(fleet, list(USERS), request_id=request_id, run=run, enqueue=Sent())
    return run


def _two_trainings(**settings: Any) -> tuple[Fleet, Run, Run]:
    fleet = memory_fleet(Settings(_env_file=None, **settings))  # type: ignore[call-arg]
    first, fresh, late = _events()
    _at(fleet, first)
    _ingest(fleet, first, "first")
    plan_scoring(fleet, Sent())
    plan_training(fleet, Sent())  # the population profile
    one = _train(fleet, "train-1")
    _at(fleet, fresh)
    _ingest(fleet, [*fresh, late], "fresh")
    plan_scoring(fleet, Sent())  # counts the new events (and the late one) on the registry
    two = _train(fleet, "train-2")
    return fleet, one, two


def _payloads(fleet: Fleet) -> dict[str, bytes]:
    out = {}
    for user in USERS:
        stored = fleet.models.load(user)
        assert stored is not None
        out[user] = stored.payload
    return out


def test_a_retrain_reads_the_changed_days_and_fits_what_a_full_read_fits() -> None:
    fleet, one, two = _two_trainings()
    assert one.details["history_reads"] == {"full": 2}
    assert one.details["full_read_reasons"] == {u: "no model yet" for u in USERS}
    assert two.details["history_reads"] == {"incremental": 2}
    _, fresh, late = _events()
    assert late["timestamp"].startswith("2026-03-04")
    # user0 reads from the late event's midnight (day 3) on, user1 only the two new days
    all_events = list(fleet.couch.iter_all_docs(fleet.settings.events_db))
    since_day3 = [
        e for e in all_events if e.get("user_id") == "user0" and e["timestamp"] >= "2026-03-04"
    ]
    assert two.events_in == len(since_day3) + sum(e["user_id"] == "user1" for e in fresh)
    assert two.events_in < one.events_in
    full, _, again = _two_trainings(couchwatch_history_summaries=False)
    assert again.details["history_reads"] == {"full": 2}
    assert _payloads(fleet) == _payloads(full)  # the same model, byte for byte
    stored = summaries.load(fleet.couch, fleet.settings.db_name("models"), "user0")
    assert stored is not None and stored.meta["model_version"] == 2
    assert stored.meta["events"] == sum(
        e.get("user_id") == "user0" for e in fleet.couch.iter_all_docs(fleet.settings.events_db)
    )
    entry = fleet.couch.get(fleet.settings.db_name("models"), registry.registry_id("user0"))
    assert entry is not None and registry.EARLIEST_SINCE_TRAINING not in entry


def test_a_summary_that_cannot_be_read_or_is_due_gives_a_full_read() -> None:
    fleet, _, _ = _two_trainings()
    db = fleet.settings.db_name("models")
    doc = fleet.couch.get(db, summaries.summary_id("user0"), attachments=True)
    assert doc is not None
    doc["_attachments"][summaries.ATTACHMENT]["data"] = base64.b64encode(b"junk").decode()
    fleet.couch.put(db, doc)
    third = _train(fleet, "train-3")
    assert third.details["history_reads"] == {"full": 1, "incremental": 1}
    assert third.details["full_read_reasons"]["user0"].startswith("unreadable")
    # a summary write that failed leaves an older summary: never built on
    doc = fleet.couch.get(db, summaries.summary_id("user1"))
    assert doc is not None
    fleet.couch.put(db, {**doc, "model_version": 1})
    stale = _train(fleet, "train-3b")
    assert stale.details["full_read_reasons"]["user1"].startswith("not the summary")
    fleet.now.at += timedelta(days=8)  # type: ignore[attr-defined]
    fourth = _train(fleet, "train-4")
    assert fourth.details["history_reads"] == {"full": 2}
    assert set(fourth.details["full_read_reasons"].values()) == {"due for a full read"}


def test_days_before_the_history_horizon_leave_the_summary() -> None:
    fleet, _, two = _two_trainings(couchwatch_history_days=5)
    assert two.details["history_reads"] == {"incremental": 2}
    start = (fleet.now() - timedelta(days=5)).strftime("%Y-%m-%d")
    kept = [
        e
        for e in fleet.couch.iter_all_docs(fleet.settings.events_db)
        if e.get("user_id") == "user1" and e["timestamp"] >= start
    ]
    stored = fleet.models.load("user1")
    assert stored is not None
    assert stored.meta["samples"]["events"] == len(kept)
    assert stored.meta["training_window"]["start"] == min(e["timestamp"] for e in kept)
