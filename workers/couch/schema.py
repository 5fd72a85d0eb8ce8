"""Databases and Mango indexes couchwatch needs, created idempotently (`couchwatch init`).

Every database is created with `_security` restricting it to the admin and the fleet
(`workers.couch.security`): none is ever left open to anonymous clients.
"""

from __future__ import annotations

from workers.couch.client import CouchClient
from workers.couch.security import couchwatch_dbs, secure_databases
from workers.settings import Settings

EVENTS_BY_ENTITY_TIME = "couchwatch-entity-time"
STATS_DDOC = "_design/couchwatch-stats"
# Anomaly indexes for keyset pages, by the equality filter in front of [window_start, _id].
ANOMALY_PAGE_INDEXES: dict[str, tuple[str, ...]] = {
    "page-time": (),
    "page-entity": ("entity",),
    "page-status": ("review.status",),
    "page-severity": ("severity",),
}


def events_index(settings: Settings) -> tuple[str, str]:
    """Return (design doc, index name) of the events index on [entity field, timestamp]."""
    name = f"{EVENTS_BY_ENTITY_TIME}-{settings.entity_field}"
    return name, name


def ensure_schema(client: CouchClient, settings: Settings) -> list[str]:
    """Create the events database, couchwatch's own databases and the indexes it queries.

    Returns the names of the databases created now (empty on a second run).
    """
    dbs = couchwatch_dbs(settings)
    created = [db for db in dbs if client.ensure_db(db)]
    secure_databases(client, settings, dbs)  # before anything is written into them
    ddoc, _ = events_index(settings)
    client.ensure_index(settings.events_db, [settings.entity_field, "timestamp"], name=ddoc)
    anomalies = settings.db_name("anomalies")
    client.ensure_index(anomalies, ["entity", "window_start"], name="by-entity")
    for name, prefix in ANOMALY_PAGE_INDEXES.items():  # the API's keyset pages
        client.ensure_index(anomalies, [*prefix, "window_start", "_id"], name=name)
    incidents = settings.db_name("incidents")  # same page indexes, keyed on the incident start
    for name, prefix in ANOMALY_PAGE_INDEXES.items():
        client.ensure_index(incidents, [*prefix, "start", "_id"], name=name)
    client.ensure_index(settings.db_name("runs"), ["finished_at"], name="by-finished")
    client.ensure_index(settings.db_name("models"), ["type", "entity"], name="by-type-entity")
    notifications = settings.db_name("notifications")
    client.ensure_index(notifications, ["status", "next_attempt_at"], name="by-status-due")
    client.ensure_index(notifications, ["created_at"], name="by-created")
    client.ensure_index(notifications, ["status", "created_at"], name="by-status-created")
    client.upsert(anomalies, count_view("by_severity", "severity"))
    client.upsert(notifications, count_view("by_status", "status"))
    return created


def ensure_database(client: CouchClient, settings: Settings, db: str) -> bool:
    """Create one couchwatch database if missing, with its `_security`; True when created now."""
    created = client.ensure_db(db)
    secure_databases(client, settings, [db])
    return created


def count_view(view: str, field: str) -> dict[str, object]:
    """A design document with one view counting documents per `field` value (`/metrics`)."""
    body = f"function (doc) {{ if (doc.{field}) {{ emit(doc.{field}, null); }} }}"
    return {"_id": STATS_DDOC, "views": {view: {"map": body, "reduce": "_count"}}}
