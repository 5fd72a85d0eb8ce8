"""Databases and Mango indexes couchwatch needs, created idempotently (`couchwatch init`)."""

from __future__ import annotations

from workers.couch.client import CouchClient
from workers.settings import DB_SUFFIXES, Settings

EVENTS_BY_ENTITY_TIME = "couchwatch-entity-time"


def events_index(settings: Settings) -> tuple[str, str]:
    """Return (design doc, index name) of the events index on [entity field, timestamp]."""
    name = f"{EVENTS_BY_ENTITY_TIME}-{settings.entity_field}"
    return name, name


def ensure_schema(client: CouchClient, settings: Settings) -> list[str]:
    """Create the events database, couchwatch's own databases and the indexes it queries.

    Returns the names of the databases created now (empty on a second run).
    """
    created = [
        db
        for db in (settings.events_db, *(settings.db_name(s) for s in DB_SUFFIXES))
        if client.ensure_db(db)
    ]
    ddoc, _ = events_index(settings)
    client.ensure_index(settings.events_db, [settings.entity_field, "timestamp"], name=ddoc)
    client.ensure_index(settings.db_name("anomalies"), ["entity", "window_start"], name="by-entity")
    client.ensure_index(settings.db_name("runs"), ["finished_at"], name="by-finished")
    client.ensure_index(settings.db_name("models"), ["type", "entity"], name="by-type-entity")
    notifications = settings.db_name("notifications")
    client.ensure_index(notifications, ["status", "next_attempt_at"], name="by-status-due")
    client.ensure_index(notifications, ["created_at"], name="by-created")
    client.ensure_index(notifications, ["status", "created_at"], name="by-status-created")
    return created
