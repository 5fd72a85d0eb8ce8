"""`couchwatch notifications [--failed] [--last N]`: what was sent, what is waiting, what failed."""

from __future__ import annotations

import json

import click

from couchwatch.cli.common import couch_or_fail, fail, printable, settings_or_fail
from workers.couch.errors import CouchError


@click.command()
@click.option("--failed", "failed_only", is_flag=True, help="Only notifications given up.")
@click.option("--last", type=click.IntRange(1, 10_000), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def notifications(failed_only: bool, last: int, as_json: bool) -> None:
    """List notifications, newest first: status, attempts, channel, entity and last error."""
    from workers.notify.service import recent_notifications

    settings = settings_or_fail()
    couch = couch_or_fail(settings)
    try:
        docs = recent_notifications(couch, settings, last=last, failed_only=failed_only)
    except CouchError as exc:
        fail(f"{exc} (run `couchwatch init` to create the notification indexes)")
    if as_json:
        click.echo(json.dumps(docs, indent=2, default=str))
        return
    if not docs:
        click.echo("no failed notifications" if failed_only else "no notifications")
    for d in docs:
        a = d.get("anomaly") or {}
        when = d.get("sent_at") or d.get("next_attempt_at") or ""
        click.echo(
            printable(
                f"{d['created_at'][:19]} {d['status']:<7} {d['mode']:<9} {d['channel']:<20} "
                f"attempts {d.get('attempts', 0)}  {a.get('severity')} {_score(a)} "
                f"{printable(d.get('entity')):<14} {'sent' if d.get('sent_at') else 'due'} "
                f"{str(when)[:19]}"
            )
        )
        kind = "incident" if d.get("incident_id") else "anomaly"
        click.echo(f"      {kind} {printable(d['anomaly_id'])}")
        if d.get("last_error"):
            click.echo(f"      last error: {printable(d['last_error'])}")


def _score(summary: dict[str, object]) -> str:
    try:
        return f"{float(summary.get('score') or 0):.2f}"  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return printable(summary.get("score"))[:12]
