"""Shared request helpers: the app's settings and CouchDB client, time parameters."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from workers.couch.client import CouchClient
from workers.settings import Settings


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_couch(request: Request) -> CouchClient:
    couch: CouchClient = request.app.state.couch
    return couch


EARLIEST, LATEST = "1970-01-01T00:00:00.000Z", "2200-01-01T00:00:00.000Z"
SettingsDep = Annotated[Settings, Depends(get_settings)]
CouchDep = Annotated[CouchClient, Depends(get_couch)]


def parse_range(since: str | None, until: str | None) -> tuple[str | None, str | None]:
    """Canonical UTC text for `since`/`until` (ISO 8601 with offset or epoch seconds); 400 if
    either is not a time or `since` is not before `until`."""
    from scheduler.client import BadRequest, parse_time

    try:
        start, end = parse_time(since, "since"), parse_time(until, "until")
    except BadRequest as exc:
        raise HTTPException(400, str(exc)) from None
    except (OverflowError, ValueError):
        raise HTTPException(400, "since/until is out of range") from None
    for what, value in (("since", start), ("until", end)):
        if value is not None and not EARLIEST <= value < LATEST:
            raise HTTPException(400, f"{what} {value} is outside {EARLIEST[:4]}..{LATEST[:4]}")
    if start is not None and end is not None and start >= end:
        raise HTTPException(400, f"since {start} must be before until {end}")
    return start, end
