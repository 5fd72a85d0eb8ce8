"""Events that wait for a model (workers/unscored.py) on the in-memory twins: the planner holds
them instead of enqueueing, a first model keeps them as history (or they are scored), a later
model scores them, and nothing is counted twice or cleared before its scoring is enqueued."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pandas as pd
import pytest

from couchwatch.evaluate.fleet import _ingest, memory_fleet
from scheduler.planning import CHECKPOINT, plan_scoring, plan_training
from tests.unit.engine._synth import history
from workers import detection
from workers.fleet import Fleet
from workers.settings import Settings
from workers.store.registry import registry_id
from workers.store.runs import Run
from workers.training import mark_trained
from workers.unscored import await_model, score_waiting, waiting_of

pytestmark = pytest.mark.unit
SCORE = "couchwatch.score_entities"


def _fleet(**overrides: Any) -> tuple[Fleet, list[dict[str, Any]]]:
    fleet = memory_fleet(Settings(_env_file=None, **overrides))  # type: ignore[call-arg]
    events = [e for k in range(2) for e in history(f"user{k}", days=6, seed=k)]
    last = pd.Timestamp(max(e["timestamp"] for e in events)).to_pydatetime()
    fleet.now.at = last + timedelta(seconds=1)  # type: ignore[attr-defined]
    _ingest(fleet, events, "test")
    return fleet, events


def _registry(fleet: Fleet, entity: str) -> dict[str, Any]:
    doc = fleet.couch.get(fleet.settings.db_name("models"), registry_id(entity))
    assert doc is not None
    return doc


class Sent(list[tuple[str, list[Any]]]):
    def __call__(self, task: str, args: list[Any]) -> str:
        self.append((task, args))
        return f"task-{len(self)}"


def test_the_planner_holds_events_nothing_can_score_and_counts_a_replay_once() -> None:
    fleet, events = _fleet()
    per_user = {u: sum(e["user_id"] == u for e in events) for u in ("user0", "user1")}
    sent = Sent()
    result = plan_scoring(fleet, sent)
    assert sent == [] and result.deferred_entities == 2 and result.deferred_events == len(events)
    for user, n in per_user.items():
        assert waiting_of(_registry(fleet, user))[1] == n  # type: ignore[index]
    fleet.couch.put_local(fleet.settings.events_db, CHECKPOINT, {"seq": "0"})  # a replay
    again = plan_scoring(fleet, sent)
    assert sent == [] and again.deferred_entities == 2
    assert waiting_of(_registry(fleet, "user0"))[1] == per_user["user0"]  # type: ignore[index]


def test_with_a_population_or_a_model_the_planner_enqueues() -> None:
    fleet, _ = _fleet()
    db = fleet.settings.db_name("models")
    fleet.couch.upsert(
        db, {"_id": registry_id("user0"), "type": "entity", "entity": "user0", "model_version": 1}
    )
    sent = Sent()
    result = plan_scoring(fleet, sent)  # no population: user1 waits, user0 has a model
    assert [item[0] for _, (batch,) in sent for item in batch] == ["user0"]
    assert result.deferred_entities == 1 and waiting_of(_registry(fleet, "user0")) is None
    fleet.couch.upsert(
        db, {"_id": detection.POPULATION_ID, "profile": {"format": detection.POPULATION_FORMAT}}
    )
    _ingest(fleet, history("user2", days=3, seed=5), "more")
    sent.clear()
    assert plan_scoring(fleet, sent).deferred_entities == 0
    assert [item[0] for _, (batch,) in sent for item in batch] == ["user2"]


@pytest.mark.parametrize("score_first", [False, True], ids=["keep", "score"])
def test_a_first_model_keeps_or_scores_them_and_a_later_model_scores_them(
    score_first: bool,
) -> None:
    fleet, _ = _fleet(couchwatch_score_first_history=score_first)
    plan_scoring(fleet, Sent())
    before = {u: waiting_of(_registry(fleet, u)) for u in ("user0", "user1")}
    run = Run(task="t", task_id="t1", entities=["user0", "user1"])
    to_score = mark_trained(fleet, {"user0": 1, "user1": 1}, fleet.now(), run)
    if score_first:  # held until their scoring is enqueued
        assert to_score == before and "kept_as_history" not in run.details
        assert waiting_of(_registry(fleet, "user0")) == before["user0"]
        sent = Sent()
        assert score_waiting(fleet, to_score, sent) == ["task-1"]
        assert sorted(i[0] for i in sent[0][1][0]) == ["user0", "user1"]
        assert waiting_of(_registry(fleet, "user0")) is None
    else:
        assert to_score == {}
        assert run.details["kept_as_history"] == {u: w[1] for u, w in before.items() if w}
        assert _registry(fleet, "user0")["history_kept"] == before["user0"][1]  # type: ignore[index]
        assert waiting_of(_registry(fleet, "user0")) is None
    # later: the model cannot be loaded and no population exists; a scoring task holds events
    await_model(fleet, "user0", ["2026-03-09T10:00:00.000Z"], span="s1", start=None, until=None)
    run = Run(task="t", task_id="t2", entities=["user0"])
    assert mark_trained(fleet, {"user0": 2}, fleet.now(), run) == {
        "user0": ("2026-03-09T10:00:00.000Z", 1)
    }


def test_a_scoring_task_counts_a_whole_history_once_and_a_redelivery_once() -> None:
    fleet, events = _fleet()
    plan_scoring(fleet, Sent())
    mine = sorted(e["timestamp"] for e in events if e["user_id"] == "user0")
    await_model(fleet, "user0", mine, span="s1", start=None, until=None)  # whole history
    assert waiting_of(_registry(fleet, "user0")) == (mine[0], len(mine))
    later = ["2026-04-01T00:00:00.000Z"]
    await_model(fleet, "user0", later, span="s2", start=later[0], until=None)
    await_model(fleet, "user0", later, span="s2", start=later[0], until=None)  # redelivered
    assert waiting_of(_registry(fleet, "user0")) == (mine[0], len(mine) + 1)


def test_clearing_leaves_events_added_after_the_enqueue_and_the_sweep_scores_them() -> None:
    fleet, _ = _fleet()
    plan_scoring(fleet, Sent())
    db = fleet.settings.db_name("models")
    seen = waiting_of(_registry(fleet, "user0"))
    assert seen is not None
    await_model(
        fleet, "user0", ["2026-04-01T00:00:00.000Z"], span="s9", start="2026-04-01", until=None
    )
    score_waiting(fleet, {"user0": seen}, Sent())  # enqueued what it saw: the rest stays
    assert waiting_of(_registry(fleet, "user0")) == (seen[0], seen[1] + 1)
    # user0 has a usable model and is not due: plan_training's sweep enqueues its scoring
    fleet.couch.upsert(
        db,
        {
            **_registry(fleet, "user0"),
            "model_version": 1,
            "last_trained_at": "9999-01-01T00:00:00.000Z",
        },
    )
    sent = Sent()
    result = plan_training(fleet, sent)
    assert result.waiting_entities == 1 and result.waiting_events == seen[1] + 1
    scored = [i for task, (batch,) in sent if task == SCORE for i in batch]
    assert scored == [["user0", seen[0], None]]
    assert waiting_of(_registry(fleet, "user0")) is None


def test_the_planner_pass_train_all_runs_waits_for_the_lock_or_gives_up() -> None:
    from scheduler.planning import PLAN_SCORING_LOCK, plan_scoring_locked

    fleet, events = _fleet()
    held = fleet.redis.lock(PLAN_SCORING_LOCK, timeout=60)
    assert held.acquire(blocking=False)
    assert plan_scoring_locked(fleet, Sent(), wait_s=0) is None  # beat's task: skipped, no error
    assert plan_scoring_locked(fleet, Sent(), wait_s=0.3) is None  # waited, then gave up
    held.release()
    result = plan_scoring_locked(fleet, Sent(), wait_s=0.3)
    assert result is not None and result.events == len(events)
    assert not fleet.redis.exists(PLAN_SCORING_LOCK)  # released after the pass


def test_an_entity_that_cannot_be_trained_has_its_waiting_events_scored_cold_start() -> None:
    fleet, _ = _fleet()
    plan_scoring(fleet, Sent())  # both wait
    db = fleet.settings.db_name("models")
    entry = _registry(fleet, "user1")
    fleet.couch.upsert(
        db, {**entry, "train_failures": fleet.settings.couchwatch_max_train_failures}
    )
    sent = Sent()
    result = plan_training(fleet, sent)  # builds the population; trains user0 only
    assert [b for task, (b,) in sent if task == "couchwatch.train_entities"] == [["user0"]]
    assert [i[0] for task, (b,) in sent if task == SCORE for i in b] == ["user1"]
    assert result.waiting_entities == 1 and waiting_of(_registry(fleet, "user1")) is None
    assert waiting_of(_registry(fleet, "user0")) is not None  # its training settles them
