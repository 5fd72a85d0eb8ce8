"""The fleet's logic on the in-memory twins (CouchDB 3 twin, fakeredis): planning, training,
scoring and review write the documents they should, and a redelivered task writes nothing new.

The plain functions the Celery tasks call are called here directly; the real worker processes
are tests/integration/test_fleet.py's.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pandas as pd
import pytest

from couchwatch.evaluate.fleet import _ingest, memory_fleet
from scheduler.planning import CHECKPOINT, plan_scoring, plan_training
from tests.unit.engine._synth import FIREFOX_LINUX, KYIV, history, login
from workers import detection
from workers.fleet import Fleet
from workers.review import UnknownAnomaly, review_anomaly
from workers.scoring import score_entities
from workers.settings import Settings
from workers.store import anomalies as anomaly_store
from workers.store import registry
from workers.store.models import head_id
from workers.store.runs import Run
from workers.training import pending_key, train_entities

pytestmark = pytest.mark.unit
TRAIN, SCORE = "couchwatch.train_entities", "couchwatch.score_entities"
USERS = ("user0", "user1")


class Sent(list[tuple[str, list[Any]]]):
    def __call__(self, task: str, args: list[Any]) -> str:
        self.append((task, args))
        return f"task-{len(self)}"


def _fleet() -> tuple[Fleet, list[dict[str, Any]]]:
    fleet = memory_fleet(Settings(_env_file=None))  # type: ignore[call-arg]
    events = [e for k, u in enumerate(USERS) for e in history(u, days=8, seed=k)]
    last = pd.Timestamp(max(e["timestamp"] for e in events)).to_pydatetime()
    fleet.now.at = last + timedelta(seconds=1)  # type: ignore[attr-defined]
    _ingest(fleet, events, "test")
    return fleet, events


def _models_db(fleet: Fleet) -> str:
    return fleet.settings.db_name("models")


def _train(fleet: Fleet, request_id: str = "train-1") -> Run:
    run = Run(task=TRAIN, task_id=request_id, entities=list(USERS))
    train_entities(fleet, list(USERS), request_id=request_id, run=run, enqueue=Sent())
    return run


def _trained_fleet() -> tuple[Fleet, list[dict[str, Any]]]:
    fleet, events = _fleet()
    plan_scoring(fleet, Sent())  # the registry learns of the entities
    plan_training(fleet, Sent())  # builds the population profile
    _train(fleet)
    return fleet, events


def test_training_stores_a_model_per_entity_and_a_redelivery_adds_no_version() -> None:
    fleet, _ = _fleet()
    plan_scoring(fleet, Sent())
    sent = Sent()
    assert plan_training(fleet, sent).entities == len(USERS)
    assert [t for t, _ in sent] == [TRAIN] and sorted(sent[0][1][0]) == list(USERS)
    assert plan_training(fleet, Sent()).entities == 0  # enqueued, not trained: not again
    run = _train(fleet)
    assert run.entity_errors == {} and run.docs_out == 2 and run.events_in > 0
    for user in USERS:
        head = fleet.couch.get(_models_db(fleet), head_id(user))
        entry = fleet.couch.get(_models_db(fleet), registry.registry_id(user))
        assert head is not None and entry is not None
        assert entry["model_version"] == head["active_version"] == 1
        assert entry["events_since_training"] == 0 and entry["train_failures"] == 0
        assert not fleet.redis.exists(pending_key(user))
    again = _train(fleet)  # the same task delivered again: its own version, found
    assert again.docs_out == 0 and again.details["versions"] == run.details["versions"]
    heads = [fleet.couch.get(_models_db(fleet), head_id(u)) for u in USERS]
    assert all(h is not None and len(h["versions"]) == 1 for h in heads)


def test_a_poison_entity_fails_alone_and_its_failures_are_counted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fleet, _ = _fleet()
    plan_scoring(fleet, Sent())
    plan_training(fleet, Sent())
    real_fit = detection.fit_summary  # an entity without reviews is fitted from its summary

    def fit(entity: Any, *args: Any, **kwargs: Any) -> Any:
        if entity == "user1":
            raise ValueError("poison")
        return real_fit(entity, *args, **kwargs)

    monkeypatch.setattr(detection, "fit_summary", fit)
    for attempt in range(2):
        run = _train(fleet, request_id=f"t{attempt}")
        assert list(run.entity_errors) == ["user1"] and "ValueError: poison" in str(
            run.entity_errors
        )
        assert set(run.details["versions"]) == {"user0"}
    entry = fleet.couch.get(_models_db(fleet), registry.registry_id("user1"))
    assert entry is not None and entry["train_failures"] == 2
    assert entry["last_train_error"] == "ValueError: poison" and "model_version" not in entry
    # the trained entity may be enqueued again now; the failed one once its marker expires
    assert not fleet.redis.exists(pending_key("user0"))
    assert (
        0
        < int(fleet.redis.ttl(pending_key("user1")))
        <= fleet.settings.couchwatch_train_pending_ttl_s
    )


def _attack(fleet: Fleet, user: str, n: int = 30) -> str:
    at = fleet.now() + timedelta(hours=6)  # type: ignore[operator]
    burst = [
        {
            **login(user, at + timedelta(seconds=20 * i), 90_000 + i, place=KYIV, ua=FIREFOX_LINUX),
            "_id": f"{user}-attack-{i}",
        }
        for i in range(n)
    ]
    fleet.now.at = at + timedelta(hours=1)  # type: ignore[attr-defined]
    _ingest(fleet, burst, "attack")
    return str(burst[0]["timestamp"])


def test_scoring_writes_anomalies_keeps_a_review_on_rescore_and_a_replay_changes_nothing() -> None:
    fleet, _ = _trained_fleet()
    since = _attack(fleet, "user0")
    run = Run(task=SCORE, task_id="s1", entities=["user0"])
    ids = score_entities(fleet, [("user0", since, None)], request_id="s1", run=run)
    assert ids and run.docs_out == len(ids) and run.entity_errors == {}
    db = fleet.settings.db_name("anomalies")
    stored = fleet.couch.get_many(db, ids)
    assert set(stored) == set(ids)
    assert all(d["entity"] == "user0" and d["review"]["status"] == "open" for d in stored.values())
    target = ids[0]
    review_anomaly(fleet.couch, db, target, "confirmed", by="ana", note="not her", registry_db=None)
    reviewed = fleet.couch.get(db, target)
    assert reviewed is not None
    again = Run(task=SCORE, task_id="s1", entities=["user0"])  # redelivered
    assert score_entities(fleet, [("user0", since, None)], request_id="s1", run=again) == ids
    after = fleet.couch.get(db, target)
    assert after is not None and after["review"] == reviewed["review"]
    assert after["_rev"] == reviewed["_rev"]  # nothing changed, nothing written
    assert [d["_id"] for d in anomaly_store.reviewed(fleet.couch, db, "user0")] == [target]
    incidents = list(fleet.couch.iter_all_docs(fleet.settings.db_name("incidents")))
    assert incidents and all(d["entity"] == "user0" for d in incidents)


def test_a_whole_history_rescore_keeps_ids_scores_and_only_the_reviewed_one_changed() -> None:
    """What the `couchwatch.rescore` task does (score_entities over (entity, None, None)) twice
    with a review in between: the same anomalies, the review kept, the others still open with
    their scores (was tests/integration/test_fleet_resilience.py::
    test_rescore_is_idempotent_and_keeps_review; a rescore through a real worker keeping a review
    stays in tests/integration/test_api.py::test_jobs_healthz_and_review_kept_on_rescore)."""
    fleet, _ = _trained_fleet()
    _attack(fleet, "user0")
    db = fleet.settings.db_name("anomalies")
    first_run = Run(task="couchwatch.rescore", task_id="r1", entities=["user0"])
    ids = score_entities(fleet, [("user0", None, None)], request_id="r1", run=first_run)
    assert ids, "the attack scored no anomaly"
    first = fleet.couch.get_many(db, ids)
    target = ids[0]
    review_anomaly(
        fleet.couch, db, target, "dismissed", by="ana", note="travel", registry_db=_models_db(fleet)
    )
    second_run = Run(task="couchwatch.rescore", task_id="r2", entities=["user0"])
    again = score_entities(fleet, [("user0", None, None)], request_id="r2", run=second_run)
    assert sorted(again) == sorted(ids)
    second = fleet.couch.get_many(db, ids)
    assert second[target]["review"]["status"] == "dismissed"
    assert second[target]["review"]["note"] == "travel"
    others = [i for i in ids if i != target]
    assert all(second[i]["review"]["status"] == "open" for i in others)
    assert {i: second[i]["score"] for i in others} == {i: first[i]["score"] for i in others}
    assert all(second[i]["_rev"] == first[i]["_rev"] for i in others)  # nothing rewritten


def test_the_planner_enqueues_new_events_once_and_quarantines_invalid_documents() -> None:
    fleet, events = _trained_fleet()
    assert fleet.couch.get_local(fleet.settings.events_db, CHECKPOINT) is not None
    assert plan_scoring(fleet, Sent()).events == 0  # nothing new since the checkpoint
    _attack(fleet, "user1", n=5)
    fleet.couch.put(fleet.settings.events_db, {"_id": "bad", "user_id": "user1"})  # no time
    sent = Sent()
    result = plan_scoring(fleet, sent)
    assert result.events == 5 and result.quarantined == 1 and result.batches == 1
    assert sent[0][0] == SCORE and [item[0] for item in sent[0][1][0]] == ["user1"]
    quarantine = list(fleet.couch.iter_all_docs(fleet.settings.db_name("quarantine")))
    assert [q["event_id"] for q in quarantine] == ["bad"]
    assert "timestamp" in quarantine[0]["reason"]
    entry = fleet.couch.get(_models_db(fleet), registry.registry_id("user1"))
    assert entry is not None
    assert entry["events_seen"] == sum(e["user_id"] == "user1" for e in events) + 5
    assert registry.latest_batch_start(entry) == sent[0][1][0][0][1]
    assert plan_scoring(fleet, Sent()).events == 0  # the checkpoint moved past them


def test_a_review_is_stored_refused_for_unknown_ids_and_bad_statuses() -> None:
    fleet, _ = _trained_fleet()
    since = _attack(fleet, "user0")
    run = Run(task=SCORE, task_id="s", entities=["user0"])
    target = score_entities(fleet, [("user0", since, None)], request_id="s", run=run)[0]
    db = fleet.settings.db_name("anomalies")
    models = _models_db(fleet)
    doc = review_anomaly(
        fleet.couch, db, target, "dismissed", by="x" * 300, note="trip", registry_db=models
    )
    assert doc["review"]["status"] == "dismissed" and doc["review"]["by"] == "x" * 200
    assert fleet.couch.get(db, target)["review"] == doc["review"]  # type: ignore[index]
    with pytest.raises(UnknownAnomaly):
        review_anomaly(
            fleet.couch, db, "anomaly:missing", "confirmed", by="ana", registry_db=models
        )
    with pytest.raises(ValueError, match="review status"):
        review_anomaly(fleet.couch, db, target, "maybe", by="ana", registry_db=models)
    reopened = review_anomaly(fleet.couch, db, target, "open", by="ana", registry_db=models)
    assert reopened["review"]["status"] == "open"
    assert anomaly_store.reviewed(fleet.couch, db, "user0") == []


class CountingReviews:
    """Counts the reviewed-anomaly queries training makes."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.entities: list[Any] = []
        real = anomaly_store.reviewed

        def reviewed(couch: Any, db: str, entity: Any) -> list[dict[str, Any]]:
            self.entities.append(entity)
            return real(couch, db, entity)

        monkeypatch.setattr(anomaly_store, "reviewed", reviewed)


def test_training_reads_reviews_only_for_entities_the_registry_says_may_have_some(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fleet, _ = _trained_fleet()  # the first training found no reviews: has_reviews false
    models = _models_db(fleet)
    assert all(
        fleet.couch.get(models, registry.registry_id(u))["has_reviews"] is False  # type: ignore[index]
        for u in USERS
    )
    since = _attack(fleet, "user0")
    run = Run(task=SCORE, task_id="s", entities=["user0"])
    target = score_entities(fleet, [("user0", since, None)], request_id="s", run=run)[0]
    db = fleet.settings.db_name("anomalies")
    review_anomaly(fleet.couch, db, target, "dismissed", by="ana", registry_db=models)
    entry = fleet.couch.get(models, registry.registry_id("user0"))
    assert entry is not None and entry["has_reviews"] is True
    counted = CountingReviews(monkeypatch)
    _train(fleet, "train-2")
    assert counted.entities == ["user0"]  # one query, not one per entity
    entry = fleet.couch.get(models, registry.registry_id("user0"))
    assert entry is not None and entry["has_reviews"] is True  # stays known
    # a registry written before the flag existed has no field: every entity is queried
    for user in USERS:
        doc = fleet.couch.get(models, registry.registry_id(user))
        assert doc is not None
        doc.pop("has_reviews")
        fleet.couch.put(models, doc)
    counted.entities.clear()
    _train(fleet, "train-3")
    assert sorted(counted.entities) == sorted(USERS)


def test_a_review_during_training_is_not_lost_by_the_training_write() -> None:
    old = registry.base("user0", has_reviews=True)  # the review landed while training ran
    merged, _ = registry.merge_trained(
        old,
        registry.trained_doc("user0", 2, "2026-01-01T00:00:00.000Z", has_reviews=False),
        keep_first_history=True,
    )
    assert merged["has_reviews"] is True and merged["model_version"] == 2
    assert registry.may_have_reviews(None) and registry.may_have_reviews({})
    assert not registry.may_have_reviews({"has_reviews": False})
