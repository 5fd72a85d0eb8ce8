"""Notifications of incidents: one per incident and severity reached, incident facts in words."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from workers.engine.incidents import group_incidents
from workers.notify.decide import notifiable
from workers.notify.message import render
from workers.notify.service import incident_alerts
from workers.settings import Settings
from workers.store.anomalies import anomaly_id
from workers.store.incidents import incident_doc
from workers.store.notifications import (
    alert_key,
    covering_keys,
    new_notification,
    notification_id,
    summarize,
)

pytestmark = pytest.mark.unit
NOW = datetime(2024, 5, 1, 12, tzinfo=UTC)
HINT = "couchwatch review {id} confirm|dismiss"


def _anomaly(minute: int, severity: str = "high", **extra: Any) -> dict[str, Any]:
    start = f"2024-05-01T03:{minute:02d}:00.000Z"
    return {
        "_id": anomaly_id("alice", "combined", start),
        "type": "anomaly",
        "entity": "alice",
        "entity_field": "user_id",
        "detector": "novelty" if minute else "combined",
        "window_start": start,
        "window_end": start,
        "score": 0.9 + minute / 1000,
        "severity": severity,
        "reasons": [{"feature": "f", "text": f"reason {minute}"}],
        "review": {"status": "open"},
        **extra,
    }


def _incident(*minutes: int, severity: str = "high") -> dict[str, Any]:
    (incident,) = group_incidents([_anomaly(m, severity) for m in minutes])
    return incident_doc(incident, NOW)


class _Couch:
    """get_many over in-memory databases (the only call incident_alerts makes)."""

    def __init__(self, dbs: dict[str, dict[str, dict[str, Any]]]) -> None:
        self.dbs = dbs

    def get_many(self, db: str, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        return {i: self.dbs.get(db, {})[i] for i in ids if i in self.dbs.get(db, {})}


def test_an_incident_notifies_once_per_severity_and_never_below_one_sent() -> None:
    medium, high = _incident(0, 15, severity="medium"), _incident(0, 15)
    assert medium["_id"] == high["_id"]
    assert alert_key(medium) != alert_key(high)
    assert notification_id(alert_key(medium), "email") != notification_id(alert_key(high), "email")
    assert covering_keys(medium) == [f"{medium['_id']}@medium", f"{medium['_id']}@high"]
    assert covering_keys(high) == [f"{high['_id']}@high"]
    assert covering_keys(_anomaly(0)) == [_anomaly(0)["_id"]]
    doc = new_notification(
        high, channel="email", target="smtp", mode="immediate", due_at=NOW, now=NOW
    )
    assert doc["incident_id"] == high["_id"] and doc["anomaly"]["kind"] == "incident"
    assert doc["anomaly"]["n_anomalies"] == 2


def test_notifiable_takes_incidents_and_skips_dismissed_ones() -> None:
    open_one = _incident(0, 15)
    dismissed = {**_incident(30), "review": {"status": "dismissed"}}
    low = _incident(45, severity="low")
    assert [a["_id"] for a in notifiable([open_one, dismissed, low], "high")] == [open_one["_id"]]


def test_incident_message_shows_span_size_reasons_and_review_hint() -> None:
    incident = _incident(0, 15, 30)
    msg = render("notification:x", [summarize(incident)], hint=HINT)
    assert msg.subject == "[couchwatch] high incident: user_id alice (score 0.93, 3 anomalies)"
    for part in (
        "2024-05-01T03:00:00.000Z to 2024-05-01T03:30:00.000Z",
        "3 anomalies",
        "(combined, novelty)",
        "reason 30",
        "reason 0",
        f"couchwatch review {incident['_id']} confirm|dismiss",
        f"Incident:  {incident['_id']}",
    ):
        assert part in msg.text, part
    assert msg.text.index("reason 30") < msg.text.index("reason 0")  # highest score first
    assert msg.payload["type"] == "couchwatch.incident" and msg.payload["anomalies"] == []
    assert msg.payload["incidents"][0]["n_anomalies"] == 3
    assert "3 anomalies" in msg.payload["text"] and "3 anomalies" in msg.html
    digest = render("digest:x", [summarize(incident), summarize(_incident(50))], hint=HINT)
    assert "digest: 2 incidents for user_id alice" in digest.subject


def test_incident_alerts_resolve_each_anomaly_to_its_current_incident_once() -> None:
    settings = Settings(_env_file=None, couchwatch_db_prefix="t_")  # type: ignore[call-arg]
    old, current = _incident(15), _incident(0, 15)
    old["superseded_by"] = current["_id"]
    grouped = [_anomaly(0, incident_id=current["_id"]), _anomaly(15, incident_id=old["_id"])]
    loose = _anomaly(40)
    couch = _Couch({"t_incidents": {old["_id"]: old, current["_id"]: current}})
    alerts = incident_alerts(couch, settings, [*grouped, loose])  # type: ignore[arg-type]
    assert [a["_id"] for a in alerts] == [current["_id"], loose["_id"]]
    orphan = _anomaly(50, incident_id="incident:gone")
    assert incident_alerts(couch, settings, [orphan]) == [orphan]  # type: ignore[arg-type]
