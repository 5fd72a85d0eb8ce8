"""Which CouchDB-compatible server a figure came from, and the Apache CouchDB 3 to measure on.

The bench always runs its store-backed sections on a PouchDB Server it starts itself. When
``COUCHDB_URL`` (with ``COUCHDB_USER`` / ``COUCHDB_PASSWORD``, as the fleet reads them) points
at an Apache CouchDB 3 (the compose file's image), the fleet section runs a second time against
it; the report names the server of every store figure. The server is identified by its welcome
reply (``GET /``): CouchDB answers ``{"couchdb": "Welcome", "version": "3.x.y", ...}``, PouchDB
Server ``{"express-pouchdb": "Welcome", "version": "4.2.0", ...}``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import requests

TIMEOUT_S = 5.0


@dataclass(frozen=True)
class ExternalCouch:
    """A CouchDB the bench did not start (same fields a started server has)."""

    url: str
    user: str
    password: str
    identity: str

    def __repr__(self) -> str:  # never the password
        return f"ExternalCouch(url={self.url!r}, user={self.user!r}, identity={self.identity!r})"


def identify(welcome: Mapping[str, Any]) -> str:
    """A server's name and version from its ``GET /`` reply, e.g. ``Apache CouchDB 3.3.3``."""
    version = str(welcome.get("version", "?"))
    if welcome.get("couchdb") == "Welcome":
        return f"Apache CouchDB {version}"
    if "express-pouchdb" in welcome or "pouchdb-server" in welcome:
        return f"PouchDB Server {version}"
    return f"unknown CouchDB-compatible server (version {version})"


def is_couchdb3(welcome: Mapping[str, Any]) -> bool:
    """True for an Apache CouchDB of major version 3."""
    return welcome.get("couchdb") == "Welcome" and str(welcome.get("version", "")).startswith("3.")


def welcome(url: str, auth: tuple[str, str] | None = None) -> dict[str, Any]:
    """The ``GET /`` reply of the server at ``url`` (raises on no answer or a non-JSON one)."""
    reply = requests.get(url.rstrip("/") + "/", auth=auth, timeout=TIMEOUT_S)
    reply.raise_for_status()
    body = reply.json()
    if not isinstance(body, dict):
        raise ValueError("the welcome reply is not a JSON object")
    return body


def external_couchdb(
    environ: Mapping[str, str] | None = None,
    *,
    get_welcome: Callable[[str, tuple[str, str] | None], Mapping[str, Any]] = welcome,
) -> tuple[ExternalCouch | None, str]:
    """The Apache CouchDB 3 that ``COUCHDB_URL`` points at, or None and why not (one line,
    never the password)."""
    env = os.environ if environ is None else environ
    url = env.get("COUCHDB_URL", "").strip()
    if not url:
        return None, "COUCHDB_URL is not set: no Apache CouchDB 3 was measured"
    user, password = env.get("COUCHDB_USER", ""), env.get("COUCHDB_PASSWORD", "")
    auth = (user, password) if user else None
    try:
        reply = get_welcome(url, auth)
    except (requests.RequestException, ValueError) as exc:
        return None, f"COUCHDB_URL {url} did not answer ({type(exc).__name__}): not measured"
    name = identify(reply)
    if not is_couchdb3(reply):
        return None, f"COUCHDB_URL {url} is {name}, not Apache CouchDB 3: not measured"
    return ExternalCouch(url.rstrip("/"), user, password, name), f"{name} at {url}"
