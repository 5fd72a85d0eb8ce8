"""`_security` of couchwatch's databases: only the CouchDB admin and the fleet get in.

A database whose `_security` lists no member (no name, no role) is open: PouchDB Server (and
CouchDB 2, or CouchDB 3 with `default_security = everyone`) let anonymous clients read and write
it. CouchDB 3 makes new databases admin-only (`{"members": {"roles": ["_admin"]}, ...}`), which
shuts the fleet out when it runs as a member user. `couchwatch init` (every `ensure_schema`)
therefore adds to each couchwatch database's `_security`:

- admins: the server admin running it (by name) and the role `_admin`;
- members: that admin, `COUCHWATCH_DB_MEMBER_NAMES`, `COUCHWATCH_DB_MEMBER_ROLES` (default
  `couchwatch`) and `_admin`.

Names and roles already there are kept (never removed): an operator's own grants survive.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from workers.couch.client import CouchClient
from workers.couch.errors import NotFound
from workers.couch.transport import db_path
from workers.settings import DB_SUFFIXES, Settings

Doc = dict[str, Any]
SECTIONS = ("admins", "members")
ADMIN_ROLE = "_admin"


@dataclass(frozen=True)
class DbSecurity:
    """What `check` found on one database."""

    db: str
    open: bool  # no member name and no member role: anonymous clients read and write it
    missing: tuple[str, ...] = ()  # couchwatch's grants not there, e.g. "members.roles=couchwatch"
    exists: bool = True

    @property
    def ok(self) -> bool:
        return self.exists and not self.open and not self.missing


def couchwatch_dbs(settings: Settings) -> list[str]:
    """Every database couchwatch creates: the events database and its own."""
    return [settings.events_db, *(settings.db_name(s) for s in DB_SUFFIXES)]


def session_ctx(client: CouchClient) -> Doc:
    """The `userCtx` of `GET /_session`: `{"name": ..., "roles": [...]}`."""
    body = client.transport.request("GET", "/_session") or {}
    ctx: Doc = body.get("userCtx") or {}
    return {"name": ctx.get("name"), "roles": list(ctx.get("roles") or [])}


def get_security(client: CouchClient, db: str) -> Doc:
    """`GET /db/_security` (`{}` when nothing was ever set on PouchDB Server or CouchDB 2)."""
    body: Doc = client.transport.request("GET", f"{db_path(db)}/_security") or {}
    return body


def put_security(client: CouchClient, db: str, security: Doc) -> None:
    """`PUT /db/_security` (a db or server admin only; CouchDB answers `{"ok": true}`)."""
    client.transport.request("PUT", f"{db_path(db)}/_security", json=security)


def wanted_security(settings: Settings, admin: str | None) -> Doc:
    """couchwatch's grants: the admin `admin` (None: not a server admin) and the fleet."""
    admin_names = [admin] if admin else []
    return {
        "admins": {"names": admin_names, "roles": [ADMIN_ROLE]},
        "members": {
            "names": _unique([*admin_names, *settings.couchwatch_db_member_names]),
            "roles": _unique([ADMIN_ROLE, *settings.couchwatch_db_member_roles]),
        },
    }


def is_open(security: Doc) -> bool:
    """True when `_security` lists no member name and no member role."""
    members = security.get("members") or {}
    return not (members.get("names") or members.get("roles"))


def missing_grants(current: Doc, wanted: Doc) -> tuple[str, ...]:
    """Grants of `wanted` that `current` lacks, as `section.field=value`."""
    gaps = []
    for section in SECTIONS:
        have = current.get(section) or {}
        for field in ("names", "roles"):
            present = set(have.get(field) or [])
            gaps += [f"{section}.{field}={v}" for v in wanted[section][field] if v not in present]
    return tuple(gaps)


def merged_security(current: Doc, wanted: Doc) -> Doc:
    """`current` with `wanted`'s names and roles added (order kept, nothing removed)."""
    merged = dict(current)
    for section in SECTIONS:
        have = dict(current.get(section) or {})
        for field in ("names", "roles"):
            have[field] = _unique([*(have.get(field) or []), *wanted[section][field]])
        merged[section] = have
    return merged


def secure_databases(client: CouchClient, settings: Settings, dbs: Sequence[str]) -> list[str]:
    """Add couchwatch's grants to `_security` of each of `dbs`; return those written now.

    Needs a server admin (CouchDB answers 401 otherwise) unless every grant is there already.
    """
    wanted = wanted_security(settings, _admin_name(session_ctx(client)))
    written = []
    for db in dbs:
        current = get_security(client, db)
        if missing_grants(current, wanted):
            put_security(client, db, merged_security(current, wanted))
            written.append(db)
    return written


def check_databases(
    client: CouchClient, settings: Settings, dbs: Sequence[str] | None = None
) -> list[DbSecurity]:
    """The `_security` state of each couchwatch database (for `couchwatch init` and `status`)."""
    wanted = wanted_security(settings, _admin_name(session_ctx(client)))
    found = []
    for db in couchwatch_dbs(settings) if dbs is None else dbs:
        try:
            current = get_security(client, db)
        except NotFound:
            found.append(DbSecurity(db, open=False, exists=False))
            continue
        found.append(DbSecurity(db, is_open(current), missing_grants(current, wanted)))
    return found


def describe(states: Sequence[DbSecurity]) -> str:
    """One line for the operator: all restricted, or which databases are open or lack grants."""
    absent = [s.db for s in states if not s.exists]
    opened = [s.db for s in states if s.open]
    lacking = [s.db for s in states if not s.open and s.missing]
    if not absent and not opened and not lacking:
        return f"_security restricts all {len(states)} couchwatch databases to admins and members"
    parts = [f"missing databases: {', '.join(absent)}"] if absent else []
    if opened:
        parts.append(f"open to anonymous clients (no _security members): {', '.join(opened)}")
    if lacking:
        parts.append(f"fleet grants missing from _security: {', '.join(lacking)}")
    return "; ".join(parts) + " (run `couchwatch init` as a CouchDB admin)"


def _admin_name(ctx: Doc) -> str | None:
    return ctx["name"] if ctx.get("name") and ADMIN_ROLE in ctx.get("roles", []) else None


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))
