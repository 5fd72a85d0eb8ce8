"""A retrain reads only the days with new events and fits the model a full read would fit.

On the in-memory twins (the fleet's own planning, training and store code): a first training
reads the whole history and stores its summary; after new events (one of them late, dated days
back) the retrain reads from the midnight of the earliest new event only, and stores a model
byte for byte the same as a fleet without summaries trains on the same events.
"""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import pytest

from couchwatch.evaluate.fleet import _ingest, memory_fleet
from scheduler.planning import plan_scoring, plan_training
from tests.unit.engine._synth import START, history
from workers.detection import dump_summary
from workers.fleet import Fleet
from workers.settings import Settings
from workers.store import registry, summaries
from workers.store.runs import Run
from workers.training import train_entities
from workers.training_history import open_block_start, stored_summary

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
    doc["_attachments"][summaries.OPEN]["data"] = base64.b64encode(b"junk").decode()
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


def _day_events(day: datetime) -> list[dict[str, Any]]:
    """Both users' events of the UTC day that starts at `day`."""
    every = [e for k, u in enumerate(USERS) for e in history(u, days=FIRST_DAYS + 14, seed=k)]
    return [e for e in every if pd.Timestamp(e["timestamp"]).date() == day.date()]


def _fleets() -> tuple[Fleet, Fleet]:
    """A fleet with summaries and one without, each trained once on the first ten days."""
    fleets = []
    for on in (True, False):
        fleet = memory_fleet(Settings(_env_file=None, couchwatch_history_summaries=on))  # type: ignore[call-arg]
        first, _, _ = _events()
        _at(fleet, first)
        _ingest(fleet, first, "first")
        plan_scoring(fleet, Sent())
        plan_training(fleet, Sent())
        _train(fleet, "train-1")
        fleets.append(fleet)
    return fleets[0], fleets[1]


def _stored_doc(fleet: Fleet, user: str) -> dict[str, Any]:
    doc = fleet.couch.get(fleet.settings.db_name("models"), summaries.summary_id(user))
    assert doc is not None
    return doc


def test_daily_retrains_keep_the_sealed_part_and_fit_what_a_full_read_fits() -> None:
    """Day by day (weekends without events, a late event of a sealed day, a block rolling over),
    each retrain writes the open part and keeps the sealed one unless one of its days changed;
    the model is byte for byte the one a fleet without summaries fits."""
    fleet, full = _fleets()
    day9 = next(e for e in history("user0", days=FIRST_DAYS) if e["timestamp"][:10] == "2026-03-09")
    late = {**day9, "_id": "user0-late", "timestamp": day9["timestamp"].replace(":00.", ":07.")}
    kept_days = []
    for offset, extra in ((10, []), (11, []), (14, [late]), (15, []), (17, []), (18, [])):
        day = START + timedelta(days=offset)
        for target in (fleet, full):
            target.now.at = day + timedelta(hours=23, minutes=30)  # type: ignore[attr-defined]
            _ingest(target, [*_day_events(day), *extra], f"day-{offset}")
            plan_scoring(target, Sent())
            _train(target, f"train-{offset}")
        assert _payloads(fleet) == _payloads(full), f"day {day:%Y-%m-%d}"
        doc = _stored_doc(fleet, "user0")
        assert doc["sealed_before"] == open_block_start(day)
        assert set(doc["_attachments"]) == {summaries.SEALED, summaries.OPEN}
        kept_days.append((f"{day:%m-%d}", doc["sealed_kept"]))
    # 03-12 and 03-19 start a block (the sealed part takes the week before); 03-16 re-read 03-09
    assert kept_days == [
        ("03-12", False),
        ("03-13", True),
        ("03-16", False),
        ("03-17", True),
        ("03-19", False),
        ("03-20", True),
    ]


def test_a_kept_sealed_part_is_not_uploaded_again() -> None:
    fleet, _ = _fleets()
    for offset in (10, 11):
        day = START + timedelta(days=offset)
        fleet.now.at = day + timedelta(hours=23, minutes=30)  # type: ignore[attr-defined]
        _ingest(fleet, _day_events(day), f"day-{offset}")
        plan_scoring(fleet, Sent())
        if offset == 11:
            before = fleet.couch.get(
                fleet.settings.db_name("models"), summaries.summary_id("user1"), attachments=True
            )
        _train(fleet, f"train-{offset}")
    after = fleet.couch.get(
        fleet.settings.db_name("models"), summaries.summary_id("user1"), attachments=True
    )
    assert before is not None and after is not None and after["sealed_kept"] is True
    sealed_before, sealed_after = (d["_attachments"][summaries.SEALED] for d in (before, after))
    assert sealed_after["revpos"] == sealed_before["revpos"]  # the same attachment, kept
    assert sealed_after["data"] == sealed_before["data"]
    assert after["_attachments"][summaries.OPEN]["revpos"] > sealed_before["revpos"]


def test_a_summary_changed_since_it_was_read_is_written_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another writer between the read and the write (its revision is gone): the stub is refused
    and every part is written again; the next retrain builds on it as usual."""
    fleet, full = _fleets()
    db = fleet.settings.db_name("models")
    real_save = summaries.save

    def racing_save(couch: Any, db_: str, entity: Any, *args: Any, **kwargs: Any) -> None:
        doc = couch.get(db_, summaries.summary_id(entity))
        couch.put(db_, {**doc, "touched": True})  # a new revision, the attachments kept
        monkeypatch.setattr(summaries, "save", real_save)
        real_save(couch, db_, entity, *args, **kwargs)

    for offset in (10, 11):
        day = START + timedelta(days=offset)
        if offset == 11:
            monkeypatch.setattr(summaries, "save", racing_save)
        for target in (fleet, full):
            target.now.at = day + timedelta(hours=23, minutes=30)  # type: ignore[attr-defined]
            _ingest(target, _day_events(day), f"day-{offset}")
            plan_scoring(target, Sent())
            run = _train(target, f"train-{offset}")
            assert not run.details.get("summary_errors")
    raced = [_stored_doc(fleet, u) for u in USERS]
    assert [d["sealed_kept"] for d in raced] == [False, True]  # user0's write was raced
    assert "touched" not in raced[0]  # the newest write wins
    assert _payloads(fleet) == _payloads(full)
    day = START + timedelta(days=14)
    for target in (fleet, full):
        target.now.at = day + timedelta(hours=23, minutes=30)  # type: ignore[attr-defined]
        _ingest(target, _day_events(day), "day-14")
        plan_scoring(target, Sent())
        assert _train(target, "train-14").details["history_reads"] == (
            {"incremental": 2} if target is fleet else {"full": 2}
        )
    assert _payloads(fleet) == _payloads(full)
    assert fleet.couch.get(db, summaries.summary_id("user0")) is not None


def test_a_summary_of_the_earlier_one_attachment_layout_is_read_and_rewritten() -> None:
    fleet, full = _fleets()
    db = fleet.settings.db_name("models")
    stored = summaries.load(fleet.couch, db, "user0")
    assert stored is not None
    whole = dump_summary(stored_summary(stored), entity="user0", entity_field="user_id")
    doc = fleet.couch.get(db, summaries.summary_id("user0"))
    assert doc is not None
    legacy = {k: v for k, v in doc.items() if k not in ("sealed_before", "sealed_kept")}
    legacy["_attachments"] = {
        summaries.LEGACY: {
            "content_type": "application/octet-stream",
            "data": base64.b64encode(whole).decode(),
        }
    }
    fleet.couch.put(db, legacy)
    day = START + timedelta(days=10)
    for target in (fleet, full):
        target.now.at = day + timedelta(hours=23, minutes=30)  # type: ignore[attr-defined]
        _ingest(target, _day_events(day), "day-10")
        plan_scoring(target, Sent())
        run = _train(target, "train-10")
        assert run.details["history_reads"] == (
            {"incremental": 2} if target is fleet else {"full": 2}
        )
    assert _payloads(fleet) == _payloads(full)
    doc = fleet.couch.get(db, summaries.summary_id("user0"))
    assert doc is not None and set(doc["_attachments"]) == {summaries.SEALED, summaries.OPEN}
