"""Helpers shared by CLI commands: settings, clients and one-line errors."""

from __future__ import annotations

import sys
from typing import NoReturn

import click
from pydantic import ValidationError

from workers.couch.client import CouchClient
from workers.couch.errors import CouchError
from workers.settings import Settings, get_settings


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one error line to stderr and exit."""
    click.echo(f"couchwatch: error: {message}", err=True)
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
