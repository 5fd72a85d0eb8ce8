"""`couchwatch incidents`: an entity's chained anomalies as one line each (docs/incidents.md)."""

from __future__ import annotations

import json
from typing import Any

import click

from couchwatch.cli.common import couch_or_fail, fail, printable, settings_or_fail
from workers.couch.errors import CouchError
from workers.engine.incidents import severity_rank
from workers.store import incidents as incident_store


def _first_reason(doc: dict[str, Any]) -> str:
    reasons = doc.get("reasons") or [{}]
    return str(reasons[0].get("text") or reasons[0].get("feature") or "")


def _span(start: str, end: str) -> str:
    """`2026-03-02T10:00-11:35` within a day, else both ends to the minute (UTC)."""
    if start[:10] == end[:10]:
        return f"{start[:16]}-{end[11:16]}"
    return f"{start[:16]}..{end[:16]}"


@click.command()
@click.option("--entity", default=None)
@click.option("--severity", type=click.Choice(["low", "medium", "high"]), default=None)
@click.option("--status", type=click.Choice(["open", "confirmed", "dismissed"]), default=None)
@click.option("--since", default=None, help="ISO 8601; incidents starting at or after this.")
@click.option("--top", type=int, default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def incidents(
    entity: str | None,
    severity: str | None,
    status: str | None,
    since: str | None,
    top: int,
    as_json: bool,
) -> None:
    """List incidents, highest severity then score first."""
    settings = settings_or_fail()
    couch = couch_or_fail(settings)
    floor: str | None = None
    if since:
        from scheduler.client import BadRequest, parse_time

        try:
            floor = parse_time(since, "--since")
        except BadRequest as exc:
            fail(str(exc))
    db = settings.db_name("incidents")
    try:
        if entity is not None:  # index-backed: only this entity's incidents are read
            docs = list(incident_store.iter_of_entity(couch, db, entity))
        else:
            docs = list(couch.iter_all_docs(db))
    except CouchError as exc:
        fail(str(exc))
    docs = [
        d
        for d in docs
        if d.get("type") == "incident"
        and not d.get("superseded_by")
        and (severity is None or d.get("severity") == severity)
        and (status is None or (d.get("review") or {}).get("status") == status)
        and (floor is None or str(d.get("start")) >= floor)
    ]
    docs.sort(
        key=lambda d: (
            severity_rank(d.get("severity")),
            d.get("score") or 0.0,
            str(d.get("start")),
        ),
        reverse=True,
    )
    docs = docs[:top]
    if as_json:
        click.echo(json.dumps(docs, indent=2, default=str))
        return
    for d in docs:
        span = _span(str(d["start"]), str(d["end"]))
        n = d.get("n_anomalies", 0)
        click.echo(
            f"{printable(d['severity']):<6} {float(d.get('score') or 0):.2f} "
            f"{printable(d['entity']):<14} {printable(span)} {n:>3} anomalies  "
            f"{printable(_first_reason(d))}"
        )
        click.echo(
            printable(f"      id {d['_id']}   review: {(d.get('review') or {}).get('status')}")
        )
