"""Incidents through the fleet: real PouchDB Server, real redis-server, real celery workers and
a real SMTP sink. Several anomalies of one entity make one incident document and one
notification; reviewing the incident reviews every one of its anomalies; a rescore changes
neither the incidents nor the notifications."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_settings
from tests.support.fixtures import fleet_for, running_smtp, schema_couch
from tests.support.fleet import WorkerFleet
from tests.support.receivers import SmtpSink
from tests.support.services import CouchServer, RedisServer
from tests.support.waiting import eventually, wait_run
from workers.couch.client import CouchClient
from workers.engine.demo_data import generate_demo
from workers.incidents import review_incident
from workers.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    with running_smtp() as sink:
        yield sink


@pytest.fixture
def isettings(couchdb: CouchServer, redis_service: RedisServer, smtp: SmtpSink) -> Settings:
    """Every incident notifies (severity low), by email only."""
    return make_settings(
        couchdb,
        redis_service.url,
        couchwatch_notify_severity="low",
        couchwatch_smtp_host="127.0.0.1",
        couchwatch_smtp_port=smtp.port,
        couchwatch_smtp_starttls=False,
        couchwatch_smtp_to="ops@test.local",
        couchwatch_smtp_timeout_s=5,
    )


@pytest.fixture
def icouch(isettings: Settings) -> Iterator[CouchClient]:
    with schema_couch(isettings) as client:
        yield client


@pytest.fixture
def fleet(isettings: Settings, icouch: CouchClient, tmp_path: Path) -> Iterator[WorkerFleet]:
    with fleet_for(isettings, tmp_path) as running:
        yield running


def _run(fleet: WorkerFleet, couch: CouchClient, task: str, *args: Any) -> dict[str, Any]:
    task_id = fleet.app().send_task(task, args=list(args)).id
    return wait_run(couch, fleet.settings, task_id, timeout_s=240)


def _all(couch: CouchClient, settings: Settings, suffix: str) -> list[dict[str, Any]]:
    return list(couch.iter_all_docs(settings.db_name(suffix)))


def _notify_runs(couch: CouchClient, settings: Settings) -> list[dict[str, Any]]:
    return [
        r
        for r in _all(couch, settings, "runs")
        if r["task"] == "couchwatch.notify" and r["outcome"] == "succeeded"
    ]


def test_anomalies_chain_into_one_incident_one_notification_one_review(
    isettings: Settings, icouch: CouchClient, fleet: WorkerFleet, smtp: SmtpSink
) -> None:
    days = 12
    start = (datetime.now(UTC) - timedelta(days=days + 1)).replace(hour=0, minute=0, second=0)
    events = sorted(
        generate_demo(users=6, days=days, seed=11, start=start).events, key=lambda e: e["timestamp"]
    )
    cut = int(len(events) * 0.7)
    assert not icouch.bulk_docs(isettings.events_db, events[:cut]).failed
    _run(fleet, icouch, "couchwatch.plan_scoring")  # the registry learns the entities
    fleet.app().send_task("couchwatch.plan_training", kwargs={"force": True})
    eventually(
        lambda: any(
            r["task"] == "couchwatch.train_entities" and r["outcome"] == "succeeded"
            for r in _all(icouch, isettings, "runs")
        ),
        "training",
    )
    for s in range(cut, len(events), 1000):
        assert not icouch.bulk_docs(isettings.events_db, events[s : s + 1000]).failed

    users = sorted({e["user_id"] for e in events})
    scored = _run(fleet, icouch, "couchwatch.score_entities", [[u, None, None] for u in users])
    assert scored["outcome"] == "succeeded" and scored["details"]["incidents"] > 0
    anomalies = {a["_id"]: a for a in _all(icouch, isettings, "anomalies")}
    incidents = [i for i in _all(icouch, isettings, "incidents") if not i["superseded_by"]]
    print(f"\n{len(anomalies)} anomalies in {len(incidents)} incidents")
    # every anomaly is in exactly one current incident, and knows it
    members = [a for i in incidents for a in i["anomaly_ids"]]
    assert sorted(members) == sorted(anomalies)
    owner = {a: i["_id"] for i in incidents for a in i["anomaly_ids"]}
    assert all(anomalies[a]["incident_id"] == owner[a] for a in anomalies)
    big = max(incidents, key=lambda i: i["n_anomalies"])
    assert big["n_anomalies"] >= 2, "the scenario's takeover should make several anomalies"
    assert big["severity"] == max(
        (anomalies[a]["severity"] for a in big["anomaly_ids"]), key=("low", "medium", "high").index
    )

    # one notification per incident (not per anomaly); the big one is one message at most
    eventually(lambda: _notify_runs(icouch, isettings), "the notify run")
    notes = eventually(
        lambda: (n := _all(icouch, isettings, "notifications")) and len(n) == len(incidents) and n,
        "one notification per incident",
    )
    assert len(notes) < len(anomalies)
    assert sorted(n["incident_id"] for n in notes) == sorted(i["_id"] for i in incidents)
    mine = [n for n in notes if n["incident_id"] == big["_id"]]
    assert len(mine) == 1 and mine[0]["anomaly"]["n_anomalies"] == big["n_anomalies"]

    def big_email() -> str | None:  # the big incident's message (emails come in any order)
        texts = [m.get_body(("plain",)).get_content() for m in smtp.messages]  # type: ignore[union-attr]
        return next((t for t in texts if big["_id"] in t), None)

    text = eventually(big_email, "the big incident's email")
    assert "anomalies (" in text and "couchwatch review incident:" in text

    # a rescore of the entity writes the same incidents and no new notification
    before_incidents = {i["_id"]: i for i in _all(icouch, isettings, "incidents")}
    again = _run(fleet, icouch, "couchwatch.rescore", big["entity"])
    assert again["outcome"] == "succeeded"
    eventually(lambda: len(_notify_runs(icouch, isettings)) >= 2, "the rescore's notify run")
    time.sleep(1.0)
    assert {i["_id"]: i for i in _all(icouch, isettings, "incidents")} == before_incidents
    assert len(_all(icouch, isettings, "notifications")) == len(notes)

    # reviewing the incident reviews all its anomalies (what training learns from)
    review_incident(icouch, isettings, big["_id"], "confirmed", note="takeover", by="ann")
    reviewed = icouch.get_many(isettings.db_name("anomalies"), big["anomaly_ids"])
    assert {a["review"]["status"] for a in reviewed.values()} == {"confirmed"}
    others = [a for a in _all(icouch, isettings, "anomalies") if a["_id"] not in reviewed]
    assert all(a["review"]["status"] == "open" for a in others)
    _run(fleet, icouch, "couchwatch.rescore", big["entity"])  # keeps the reviews
    kept = icouch.get(isettings.db_name("incidents"), big["_id"])
    assert kept is not None and kept["review"]["status"] == "confirmed"
    assert {
        a["review"]["status"]
        for a in icouch.get_many(isettings.db_name("anomalies"), big["anomaly_ids"]).values()
    } == {"confirmed"}
