"""`couchwatch ingest FILE`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO

import click
from tqdm import tqdm

from couchwatch.cli.common import couch_or_fail, fail, printable, settings_or_fail
from workers.couch.client import CouchClient
from workers.couch.errors import CouchError
from workers.couch.schema import ensure_schema
from workers.ingest import IngestReport, ingest_stream
from workers.settings import Settings


@click.command()
@click.argument("source", type=click.Path(allow_dash=True, dir_okay=False))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", "jsonl", "csv"]),
    default="auto",
    help="Input format; auto picks csv for *.csv, else JSON Lines.",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def ingest(source: str, fmt: str, quiet: bool) -> None:
    """Validate events from SOURCE (JSON Lines or CSV, '-' for stdin) and store them."""
    settings = settings_or_fail()
    if fmt == "auto":
        fmt = "csv" if source.lower().endswith(".csv") else "jsonl"
    client = couch_or_fail(settings)
    try:
        ensure_schema(client, settings)
        if source == "-":
            report = _run(client, settings, sys.stdin.buffer, fmt, "<stdin>", None, quiet)
        else:
            path = Path(source)
            if not path.exists():
                fail(f"{source}: no such file")
            with path.open("rb") as stream:
                report = _run(client, settings, stream, fmt, str(path), path.stat().st_size, quiet)
    except CouchError as exc:
        fail(str(exc))
    click.echo(
        f"accepted {report.accepted}, duplicates {report.duplicates}, rejected {report.rejected}"
        + (f" (quarantined in {settings.db_name('quarantine')})" if report.rejected else "")
        + (
            f", id conflicts {report.conflicts} (their id held a different event: stored under "
            "new ids)"
            if report.conflicts
            else ""
        )
    )
    for reason, count in sorted(report.reasons.items(), key=lambda kv: -kv[1])[:10]:
        click.echo(f"  {count:>6}  {printable(reason)}")


def _run(
    client: CouchClient,
    settings: Settings,
    stream: IO[bytes],
    fmt: str,
    label: str,
    size: int | None,
    quiet: bool,
) -> IngestReport:
    with tqdm(
        total=size, unit="B", unit_scale=True, disable=quiet or None, file=sys.stderr, desc="ingest"
    ) as bar:
        position = [0]

        def advance(_: int) -> None:
            try:
                now = stream.tell()
            except (OSError, ValueError):
                return
            bar.update(now - position[0])
            position[0] = now

        return ingest_stream(client, settings, stream, fmt=fmt, source=label, on_batch=advance)
