"""The services a store-backed section runs on: PouchDB Server, redis-server, real workers, beat.

Reuses the integration-test harness (``tests/support``): the same PouchDB Server, the same
``celery worker`` processes (never eager mode), the same settings plumbing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from celery import Celery

from bench.servers import ExternalCouch, identify, welcome
from tests.support.fleet import WorkerFleet, worker_fleet
from tests.support.services import ROOT, CouchServer, couch_server, redis_server, terminate
from workers.couch.client import CouchClient
from workers.couch.schema import ensure_schema
from workers.settings import DB_SUFFIXES, Settings
from workers.store.events import iter_entity_events

FINAL = ("succeeded", "partial", "failed", "skipped")
Doc = dict[str, Any]


class CouchEndpoint(Protocol):
    """Where a CouchDB-compatible server answers: one the bench started, or an external one."""

    @property
    def url(self) -> str: ...
    @property
    def user(self) -> str: ...
    @property
    def password(self) -> str: ...


def make_settings(couchdb: CouchEndpoint, redis_url: str, **overrides: Any) -> Settings:
    """Settings on the bench services with databases of their own (as the tests make them)."""
    tag = uuid.uuid4().hex[:8]
    values: dict[str, Any] = {
        "couchdb_url": couchdb.url,
        "couchdb_user": couchdb.user,
        "couchdb_password": couchdb.password,
        "redis_url": redis_url,
        "couchwatch_events_db": f"b{tag}_events",
        "couchwatch_db_prefix": f"b{tag}_cw_",
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def settings_env(settings: Settings) -> dict[str, str]:
    """Environment variables that reproduce `settings` in a worker process."""
    env = {
        name: json.dumps(value) if isinstance(value, list) else str(value)
        for name, value in settings.masked().items()
        if value is not None
    }
    secret = settings.couchdb_password
    env["COUCHDB_PASSWORD"] = secret.get_secret_value() if secret else ""
    env["COUCHDB_URL"], env["REDIS_URL"] = settings.couchdb_url, settings.redis_url
    return env


@dataclass
class Services:
    couchdb: CouchEndpoint
    redis_url: str
    workdir: Path
    server: str = "PouchDB Server"  # the server's name and version, for the report


@contextmanager
def services(workdir: Path) -> Iterator[Services]:
    """A PouchDB Server and a redis-server of the bench's own."""
    with couch_server(workdir / "pouchdb") as couchdb, redis_server(workdir / "redis") as rs:
        yield Services(couchdb, rs.url, workdir, _server_name(couchdb))


@contextmanager
def external_services(couchdb: ExternalCouch, workdir: Path) -> Iterator[Services]:
    """An external CouchDB (its databases are the bench's own, deleted after) and a
    redis-server of the bench's own."""
    with redis_server(workdir / "redis") as rs:
        yield Services(couchdb, rs.url, workdir, couchdb.identity)


def _server_name(couchdb: CouchServer) -> str:
    return identify(welcome(couchdb.url, (couchdb.user, couchdb.password)))


@dataclass
class Stack:
    """One scenario's databases, client and worker fleet (two `celery worker` processes)."""

    settings: Settings
    couch: CouchClient
    fleet: WorkerFleet
    app: Celery
    env: dict[str, str]
    logs: Path


@contextmanager
def stack(svc: Services, name: str, **overrides: Any) -> Iterator[Stack]:
    settings = make_settings(svc.couchdb, svc.redis_url, **overrides)
    couch = CouchClient.from_settings(settings)
    ensure_schema(couch, settings)
    env = settings_env(settings)
    logs = svc.workdir / "logs" / name
    try:
        with worker_fleet(settings, env, logs) as fleet:
            yield Stack(settings, couch, fleet, fleet.app(), env, logs)
    finally:
        for db in (settings.events_db, *(settings.db_name(s) for s in DB_SUFFIXES)):
            couch.delete_db(db)
        couch.close()


def store(st: Stack, events: list[Doc], chunk: int = 1000) -> None:
    for start in range(0, len(events), chunk):
        result = st.couch.bulk_docs(st.settings.events_db, events[start : start + chunk])
        if result.failed:
            raise RuntimeError(f"{len(result.failed)} events refused: {result.failed[0].reason}")


def warm_index(st: Stack, entity: str) -> None:
    """Query the events index once so the store brings it up to date before anything is timed."""
    list(iter_entity_events(st.couch, st.settings, entity))


def wait_runs(st: Stack, task_ids: list[str], timeout_s: float = 1800) -> list[Doc]:
    """The run records of `task_ids` once every one has a final outcome."""
    runs_db = st.settings.db_name("runs")
    ids = [f"run-{t}" for t in task_ids]
    deadline = time.monotonic() + timeout_s
    while True:
        docs: dict[str, Doc] = {}
        for start in range(0, len(ids), 500):
            docs.update(st.couch.get_many(runs_db, ids[start : start + 500]))
        done = [d for d in docs.values() if d.get("outcome") in FINAL]
        if len(done) == len(ids):
            return done
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(done)} of {len(ids)} runs finished (logs: {st.logs})")
        time.sleep(0.1)


def planned(st: Stack, task: str, **kwargs: Any) -> tuple[Doc, list[Doc]]:
    """Send a planner task, wait for it and for every task it enqueued; (plan run, their runs)."""
    result = st.app.send_task(task, kwargs=kwargs)
    (plan,) = wait_runs(st, [str(result.id)])
    return plan, wait_runs(st, list(plan.get("details", {}).get("task_ids", [])))


def process_group_hwm(pid: int) -> list[int]:
    """Peak RSS (VmHWM, bytes) of every process in the process group led by `pid`."""
    peaks = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) != pid:
                continue
            status = (entry / "status").read_text()
        except (OSError, ProcessLookupError):
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                peaks.append(int(line.split()[1]) * 1024)
    return peaks


def worker_peaks(st: Stack) -> dict[str, list[int]]:
    return {name: process_group_hwm(p.pid) for name, p in st.fleet.processes.items()}


@contextmanager
def beat(st: Stack) -> Iterator[subprocess.Popen[bytes]]:
    """One `celery beat` process with the stack's settings."""
    st.logs.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack_:
        log = stack_.enter_context((st.logs / "beat.log").open("ab"))
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "couchwatch.celery",
                "beat",
                "-s",
                str(st.logs / "beat-schedule"),
                "--loglevel=INFO",
            ],
            env={**os.environ, **st.env},
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield proc
        finally:
            terminate(proc, grace_s=20)
