"""The `couchwatch` command line. Each command parses its options and calls one function."""

from __future__ import annotations

import sys

import click

from couchwatch.cli.api_cmd import api, apikey
from couchwatch.cli.common import fail, settings_or_fail
from couchwatch.cli.demo_cmd import demo
from couchwatch.cli.evaluate_cmd import demo_data, evaluate
from couchwatch.cli.incidents_cmd import incidents
from couchwatch.cli.ingest_cmd import ingest
from couchwatch.cli.models_cmd import models
from couchwatch.cli.notify_cmd import notifications
from couchwatch.cli.ops_cmd import anomalies, review, runs, score, train
from couchwatch.cli.producer_cmd import rescore
from couchwatch.cli.stack_cmd import down, flower, init, status, up


@click.group()
def cli() -> None:
    """couchwatch: per-user and per-service anomaly detection over CouchDB events."""


@cli.command()
def config() -> None:
    """Print the settings in force, secrets masked."""
    settings = settings_or_fail()
    for name, value in settings.masked().items():
        click.echo(f"{name}={'' if value is None else value}")


for command in (
    ingest,
    init,
    up,
    down,
    status,
    flower,
    demo,
    demo_data,
    evaluate,
    train,
    score,
    rescore,
    anomalies,
    incidents,
    review,
    runs,
    notifications,
    models,
    api,
    apikey,
):
    cli.add_command(command)


def main() -> None:
    """Console-script entry point."""
    try:
        cli.main(prog_name="couchwatch", standalone_mode=True)
    except KeyboardInterrupt:  # pragma: no cover - interactive
        fail("interrupted")
    sys.exit(0)


__all__ = ["cli", "main"]


if __name__ == "__main__":
    main()
