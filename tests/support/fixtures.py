"""Context managers behind the fixtures several integration files share (an SMTP sink, a
CouchDB client on a fresh schema, a worker fleet); each file keeps its own thin fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import settings_env
from tests.support.fleet import WorkerFleet, worker_fleet
from tests.support.receivers import SmtpSink
from workers.couch.client import CouchClient
from workers.couch.schema import ensure_schema
from workers.settings import DB_SUFFIXES, Settings


@contextmanager
def running_smtp() -> Iterator[SmtpSink]:
    """A started SMTP sink, stopped on exit."""
    sink = SmtpSink()
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()


@contextmanager
def schema_couch(settings: Settings) -> Iterator[CouchClient]:
    """A client on `settings` with the schema ensured; every couchwatch database deleted on exit."""
    client = CouchClient.from_settings(settings)
    ensure_schema(client, settings)
    try:
        yield client
    finally:
        for db in (settings.events_db, *(settings.db_name(s) for s in DB_SUFFIXES)):
            client.delete_db(db)
        client.close()


@contextmanager
def fleet_for(settings: Settings, tmp_path: Path) -> Iterator[WorkerFleet]:
    """Two real celery workers on `settings`, logs under `tmp_path/logs`."""
    with worker_fleet(settings, settings_env(settings), tmp_path / "logs") as running:
        yield running
