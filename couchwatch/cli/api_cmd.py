"""`couchwatch api` (serve the HTTP API) and `couchwatch apikey create` (print a key once)."""

from __future__ import annotations

import click

from couchwatch.cli.common import couch_or_fail, fail, settings_or_fail
from workers.couch.errors import CouchError


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", type=int, default=8080, show_default=True)
@click.option(
    "--workers",
    "processes",
    type=int,
    default=1,
    show_default=True,
    help="uvicorn worker processes.",
)
def api(host: str, port: int, processes: int) -> None:
    """Serve the HTTP API (docs/api.md); every request needs an API key."""
    import uvicorn

    from couchwatch.api.docs_page import DocsUnavailable, swagger_ui_dir

    settings = settings_or_fail()  # a bad setting is one line here, not a traceback in uvicorn
    if settings.couchwatch_api_docs:
        try:
            swagger_ui_dir()
        except DocsUnavailable as exc:
            fail(str(exc))
    uvicorn.run(
        "couchwatch.api.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=processes,
        proxy_headers=False,
        log_level="info",
    )


@click.group()
def apikey() -> None:
    """Manage API keys (stored hashed; a key is shown only when created)."""


@apikey.command("create")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    type=click.Choice(["ingest", "read", "review", "admin"]),
    help="Scope (repeatable); admin implies all.",
)
@click.option("--name", default="", help="Who or what uses the key (shown in reviews).")
def create(scopes: tuple[str, ...], name: str) -> None:
    """Create a key and print it once."""
    from workers.couch.schema import ensure_database
    from workers.store.keys import create_key

    settings = settings_or_fail()
    couch = couch_or_fail(settings)
    db = settings.db_name("apikeys")
    try:
        ensure_database(couch, settings, db)
        click.echo(create_key(couch, db, list(scopes), name=name))
    except CouchError as exc:
        fail(str(exc))
