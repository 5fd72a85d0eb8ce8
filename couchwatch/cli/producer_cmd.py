"""`couchwatch rescore ENTITY`: enqueue an ad-hoc rescore through the light producer client.

Imports only the producer client (Celery and the settings), never the scoring engine.
"""

from __future__ import annotations

import click

from couchwatch.cli.common import fail, settings_or_fail


@click.command()
@click.argument("entity")
@click.option(
    "--since",
    default=None,
    metavar="T",
    help="Start (inclusive): ISO 8601 with offset, or epoch seconds.",
)
@click.option(
    "--until",
    default=None,
    metavar="T",
    help="End (exclusive): ISO 8601 with offset, or epoch seconds.",
)
@click.option("--numeric", is_flag=True, help="ENTITY is an integer id (events store a number).")
@click.option("--wait", is_flag=True, help="Wait for the job; exit 1 unless it succeeded.")
@click.option(
    "--timeout",
    "timeout_s",
    type=float,
    default=300.0,
    show_default=True,
    help="With --wait: seconds to wait.",
)
def rescore(
    entity: str, since: str | None, until: str | None, numeric: bool, wait: bool, timeout_s: float
) -> None:
    """Rescore ENTITY over [--since, --until) and print the job id.

    Without --since all stored history is rescored; without --until, up to now. The request is
    validated before anything is enqueued. Rescoring is idempotent: reviews are kept.
    """
    from scheduler import client

    settings_or_fail()  # a bad setting is one line here, not a traceback in the client
    target: str | int = entity
    if numeric:
        try:
            target = int(entity)
        except ValueError:
            fail(f"--numeric: {entity[:60]!r} is not an integer")
    try:
        job_id = client.rescore(target, since, until, wait=wait, timeout_s=timeout_s)
    except client.ProducerError as exc:
        fail(str(exc))
    if not wait:
        click.echo(job_id)
        return
    try:
        state = client.job_status(job_id)
    except client.ProducerError as exc:
        fail(str(exc))
    click.echo(f"{job_id} {state}")
    if state != "SUCCESS":
        fail(f"job {job_id} ended {state}: see `couchwatch runs`")
