"""Databases and Mango indexes couchwatch needs, created idempotently (`couchwatch init`).

Index names and fields are the store modules' (`workers/store/`), defined there once.

Every database is created with `_security` restricting it to the admin and the fleet
(`workers.couch.security`): none is ever left open to anonymous clients.
"""

from __future__ import annotations

from workers.couch.client import CouchClient
from workers.couch.security import couchwatch_dbs, secure_databases
from workers.settings import Settings
from workers.store import anomalies, notifications, registry, runs
from workers.store.events import events_index, events_index_fields

STATS_DDOC = "_design/couchwatch-stats"


def ensure_schema(client: CouchClient, settings: Settings) -> list[str]:
    """Create the events database, couchwatch's own databases and the indexes it queries.

    Returns the names of the databases created now (empty on a second run).
    """
    dbs = couchwatch_dbs(settings)
    created = [db for db in dbs if client.ensure_db(db)]
    secure_databases(client, settings, dbs)  # before anything is written into them
    ddoc, _ = events_index(settings)
    client.ensure_index(settings.events_db, events_index_fields(settings), name=ddoc)
    anomaly_db = settings.db_name("anomalies")
    client.ensure_index(anomaly_db, anomalies.BY_ENTITY_FIELDS, name=anomalies.BY_ENTITY)
    for name, prefix in anomalies.PAGE_INDEXES.items():  # the API's keyset pages
        client.ensure_index(anomaly_db, [*prefix, "window_start", "_id"], name=name)
    incidents = settings.db_name("incidents")  # same page indexes, keyed on the incident start
    for name, prefix in anomalies.PAGE_INDEXES.items():
        client.ensure_index(incidents, [*prefix, "start", "_id"], name=name)
    client.ensure_index(settings.db_name("runs"), ["finished_at"], name=runs.BY_FINISHED)
    models = settings.db_name("models")  # registry entries and model heads
    client.ensure_index(models, registry.BY_TYPE_ENTITY_FIELDS, name=registry.BY_TYPE_ENTITY)
    notification_db = settings.db_name("notifications")
    for name, fields in notifications.INDEXES.items():
        client.ensure_index(notification_db, fields, name=name)
    client.upsert(anomaly_db, count_view("by_severity", "severity"))
    client.upsert(notification_db, count_view("by_status", "status"))
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
