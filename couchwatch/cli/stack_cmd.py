"""`couchwatch init | up | down | status | flower | demo`: the local stack and the demo job."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from couchwatch.cli.common import couch_or_fail, fail, settings_or_fail
from couchwatch.stack import local
from workers.couch.errors import CouchError
from workers.couch.schema import ensure_schema
from workers.couch.security import check_databases, describe
from workers.settings import Settings, get_settings


@click.command()
def init() -> None:
    """Create the databases and indexes couchwatch needs, each restricted by `_security` to the
    admin and the fleet's members; then check every database (idempotent)."""
    settings = settings_or_fail()
    couch = couch_or_fail(settings)
    try:
        created = ensure_schema(couch, settings)
        states = check_databases(couch, settings)
    except CouchError as exc:
        fail(str(exc))
    click.echo(f"created {', '.join(created)}" if created else "all databases already exist")
    if not all(s.ok for s in states):
        fail(describe(states))
    click.echo(describe(states))


@click.command()
def up() -> None:
    """Start the local stack in the background (idempotent)."""
    root = Path.cwd()
    if local.ensure_env_file(root):
        click.echo("wrote .env with generated local credentials")
        get_settings.cache_clear()
    settings = settings_or_fail()
    try:
        local.up(settings, root, say=click.echo)
        ensure_schema(couch_or_fail(settings), settings)
    except (local.MissingPrerequisite, RuntimeError, CouchError) as exc:
        fail(str(exc))
    click.echo(_flower_line(settings, root))
    click.echo("Stop everything with: make down   (or: couchwatch down)")


def _flower_line(settings: Settings, root: Path) -> str:
    """Where Flower is and how to log in. The password is shown only on a terminal and only
    when it is the local secret `couchwatch up` generated into `.env` (never in a log file)."""
    url = f"http://{settings.flower_address}:{settings.flower_port}/"
    password = local.generated_flower_password(root, settings)
    if password is not None and sys.stdout.isatty():
        return f"Flower: {url} (user {settings.flower_user}, password {password})"
    return f"Flower: {url} (user {settings.flower_user}, password: FLOWER_PASSWORD in .env)"


@click.command()
def down() -> None:
    """Stop every process the local stack started."""
    stopped = local.down(settings_or_fail(), Path.cwd(), say=click.echo)
    if not stopped:
        click.echo("nothing was running")


@click.command()
def status() -> None:
    """Show each local-stack process (state, pid, port, health) and the databases' `_security`;
    exit 1 when a couchwatch database is open to anonymous clients or lacks the fleet's grants."""
    settings = settings_or_fail()
    rows = local.status(settings, Path.cwd())
    click.echo(f"{'component':<10} {'state':<10} {'pid':>7} {'port':>6}  detail")
    for row in rows:
        pid = str(row.pid) if row.pid else "-"
        port = str(row.port) if row.port else "-"
        detail = row.detail
        if row.name == "flower" and row.state == "running":
            detail = _flower_line(settings, Path.cwd()).removeprefix("Flower: ")
        click.echo(f"{row.name:<10} {row.state:<10} {pid:>7} {port:>6}  {detail}")
    if any(row.name == "security" and row.state == "problem" for row in rows):
        sys.exit(1)  # a database open to anonymous clients is never "fine"


@click.command()
@click.option("--port", type=int, default=None, help="Port (default FLOWER_PORT, 5555).")
@click.option(
    "--local-only", is_flag=True, help="Allow running without credentials; binds to 127.0.0.1 only."
)
def flower(port: int | None, local_only: bool) -> None:
    """Run Flower against the broker in the foreground, with basic auth from the settings."""
    settings = settings_or_fail()
    env = local.child_env(settings)
    if settings.flower_user and settings.flower_password is not None:
        env = local.flower_env(settings, env)
    elif local_only:
        settings = settings.model_copy(update={"flower_address": "127.0.0.1"})
        click.echo("flower: no credentials, local-only on 127.0.0.1", err=True)
    else:
        fail("FLOWER_USER and FLOWER_PASSWORD are not set; pass --local-only to run without them")
    argv = local.flower_argv(settings, port=port)
    os.execve(argv[0], argv, env)  # noqa: S606 - replaces this process with Flower
