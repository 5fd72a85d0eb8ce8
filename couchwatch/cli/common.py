"""Helpers shared by CLI commands: settings, clients and one-line errors.

Whatever a command prints from the data (entity ids, reasons, errors, ids) goes through
`printable`: an entity id with CR/LF or an escape sequence never forges a line or recolours the
terminal. `--json` output is JSON (control characters escaped by the encoder)."""

from __future__ import annotations

import sys
from typing import NoReturn

import click
from pydantic import ValidationError

from workers.couch.client import CouchClient
from workers.couch.errors import CouchError
from workers.settings import Settings, get_settings
from workers.text import printable

__all__ = ["couch_or_fail", "fail", "printable", "settings_or_fail"]


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one error line to stderr and exit (control characters in it escaped)."""
    click.echo(f"couchwatch: error: {printable(message)}", err=True)
    sys.exit(code)


def settings_or_fail() -> Settings:
    try:
        return get_settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]).upper()
        fail(f"invalid setting {field}: {first['msg']}")


def couch_or_fail(settings: Settings) -> CouchClient:
    try:
        return CouchClient.from_settings(settings)
    except CouchError as exc:
        fail(str(exc))
