"""`couchwatch demo`: the demo job, run through the fleet (never in-process).

Ingests the shipped sample (showing validation and quarantine) and a generated demo scenario,
then asks the workers to plan, train and score, and shows the top anomalies with their reasons.
"""

from __future__ import annotations

import io
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import click

from couchwatch.cli.common import couch_or_fail, fail, printable, settings_or_fail
from couchwatch.cli.ops_cmd import _after_training, _send, _wait_runs
from couchwatch.stack import local
from couchwatch.stack.mail import mail_dir, received
from workers.couch.client import CouchClient
from workers.couch.errors import CouchError
from workers.couch.schema import ensure_database, ensure_schema
from workers.ingest import ingest_stream
from workers.settings import Settings
from workers.store.keys import create_key


def _planner_task_ids(couch: CouchClient, settings: Settings, plan_id: str) -> list[str]:
    """Wait for a planner run and return the task ids it enqueued."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        doc = couch.get(settings.db_name("runs"), f"run-{plan_id}")
        if doc and doc.get("outcome") not in (None, "running", "retrying"):
            if doc["outcome"] != "succeeded":
                fail(f"planner {plan_id} {doc['outcome']}: {doc.get('error')}")
            waiting = doc.get("details", {}).get("unscored_deferred")
            if waiting:
                click.echo(
                    f"  {waiting['events']} events of {waiting['entities']} entities wait "
                    "for their first models (nothing to score them with yet)"
                )
            return list(doc.get("details", {}).get("task_ids", []))
        time.sleep(0.5)
    fail("the planner did not run within 600s: are workers up? (couchwatch status)")


@click.command()
@click.option("--users", type=int, default=30, show_default=True)
@click.option("--days", type=int, default=21, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--top", type=int, default=8, show_default=True)
def demo(users: int, days: int, seed: int, top: int) -> None:
    """Ingest demo events, then train and score them through the worker fleet."""
    from workers.engine.demo_data import generate_demo, write_demo

    settings = settings_or_fail()
    couch = couch_or_fail(settings)
    out = Path(settings.couchwatch_state_dir) / "demo"
    try:
        ensure_schema(couch, settings)
        sample = resources.files("couchwatch") / "data" / "sample_events.jsonl"
        with sample.open("rb") as stream:
            report = ingest_stream(couch, settings, stream, fmt="jsonl", source="sample")
        click.echo(
            f"sample ingest: accepted {report.accepted}, duplicates {report.duplicates}, "
            f"rejected {report.rejected}"
        )
        start = (datetime.now(UTC) - timedelta(days=days)).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        scenario = generate_demo(users=users, days=days, seed=seed, start=start)
        events_path, labels_path = write_demo(out, scenario)
        events = sorted(scenario.events, key=lambda e: e["timestamp"])
        cutoff = int(len(events) * 0.7)
        click.echo(
            f"demo scenario ({users} users, {days} days, {len(events)} events): "
            f"the first 70% is history, the rest arrives after training"
        )
        _ingest_events(couch, settings, events[:cutoff], str(events_path))

        click.echo("planning (entity registry from _changes) ...")
        _wait_runs(
            _planner_task_ids(couch, settings, _send("couchwatch.plan_scoring", [True])),
            timeout_s=1800,
        )
        click.echo("training one model per entity on the workers ...")
        train_ids = _planner_task_ids(
            couch, settings, _send("couchwatch.plan_training", [None, True])
        )
        _after_training(_wait_runs(train_ids, timeout_s=1800))
        click.echo("new events arrive; the next planning pass scores only them ...")
        _ingest_events(couch, settings, events[cutoff:], str(events_path))
        _wait_runs(
            _planner_task_ids(couch, settings, _send("couchwatch.plan_scoring", [True])),
            timeout_s=1800,
        )
        _show_top(couch, settings, top)
        _show_notifications(couch, settings)
    except CouchError as exc:
        fail(str(exc))
    click.echo(f"labels of the injected incidents: {labels_path}")
    click.echo(f"evaluate: couchwatch evaluate --labels {labels_path}")
    _show_review_page(couch, settings)


def _show_review_page(couch: CouchClient, settings: Settings) -> None:
    """The review page's URL, and on a terminal a fresh read+review API key (shown once)."""
    url = local.api_url(settings)
    if not sys.stdout.isatty():  # never write a key into a log or a CI transcript
        click.echo(
            f"review page: {url} (a key: couchwatch apikey create --scope read --scope review)"
        )
        return
    db = settings.db_name("apikeys")
    try:
        ensure_database(couch, settings, db)
        key = create_key(couch, db, ["read", "review"], name="make demo")
    except CouchError as exc:
        click.echo(f"review page: {url} (could not create a key: {exc})")
        return
    click.echo(f"review page: {url}  API key (read, review; shown only now): {key}")


def _ingest_events(
    couch: CouchClient, settings: Settings, events: list[dict[str, Any]], source: str
) -> None:
    data = "".join(json.dumps(e) + "\n" for e in events).encode()
    report = ingest_stream(couch, settings, io.BytesIO(data), fmt="jsonl", source=source)
    click.echo(
        f"  ingest: accepted {report.accepted}, duplicates {report.duplicates}, "
        f"rejected {report.rejected}"
    )


def _show_notifications(couch: CouchClient, settings: Settings, timeout_s: float = 90) -> None:
    """Wait for the notify queue to settle, then show what the incidents produced."""
    db = settings.db_name("notifications")
    deadline, docs, last, stable = time.monotonic() + timeout_s, [], -1, 0
    while time.monotonic() < deadline and stable < 5:  # until nothing changed for 5 s
        docs = list(couch.iter_all_docs(db))
        sent = sum(d.get("status") == "sent" for d in docs)
        stable = stable + 1 if docs and sent == last else 0
        last = sent
        if docs and not any(d.get("status") == "pending" for d in docs):
            break
        time.sleep(1)
    by_status = {s: sum(d.get("status") == s for d in docs) for s in ("sent", "pending", "failed")}
    counts = ", ".join(f"{n} {s}" for s, n in by_status.items())
    click.echo(f"\nnotifications: {len(docs)} ({counts}) — couchwatch notifications [--failed]")
    if by_status["pending"]:
        limit = settings.couchwatch_notify_rate_limit
        window = settings.couchwatch_notify_rate_window_s
        click.echo(
            f"    pending ones wait for the per-entity rate limit ({limit} per "
            f"{window:.0f} s) and go out as a digest"
        )
    mails = received(Path(settings.couchwatch_state_dir))
    if mails:
        click.echo(
            f"local SMTP sink received {len(mails)} messages "
            f"({mail_dir(Path(settings.couchwatch_state_dir))}):"
        )
        for message in mails[:8]:
            click.echo(f"    to {message.to}: {message.subject}")


def _show_top(couch: CouchClient, settings: Settings, top: int) -> None:
    docs: list[dict[str, Any]] = list(couch.iter_all_docs(settings.db_name("anomalies")))
    by_severity = {s: sum(d.get("severity") == s for d in docs) for s in ("high", "medium", "low")}
    click.echo(f"anomalies: {len(docs)} ({', '.join(f'{n} {s}' for s, n in by_severity.items())})")
    docs.sort(key=lambda d: (d.get("severity") == "high", d.get("score", 0)), reverse=True)
    for d in docs[:top]:
        who = printable(f"{d['entity_field']}={d['entity']}")
        head = f"{d['severity'].upper():<6} {d['score']:.2f}  {who}"
        click.echo(f"\n{head}  {d['window_start'][:16]}Z  ({d['detector']})")
        for reason in d.get("reasons", [])[:3]:
            click.echo(f"    - {printable(reason['text'])}")
        click.echo(f"    review: couchwatch review {d['_id']} confirm|dismiss --note ...")
