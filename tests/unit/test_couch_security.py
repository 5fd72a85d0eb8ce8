"""`_security` calls (`workers.couch.security`) against recorded Apache CouchDB 3 reply shapes.

Same fake adapter as test_couch_client.py: the real transport and client build, authenticate
and map every request; only the socket is replaced by canned CouchDB 3.3 replies.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from tests.unit.test_couch_client import PASSWORD, USER, make_client
from workers.couch.errors import Unauthorized
from workers.couch.memory import MemoryCouchClient
from workers.couch.schema import ensure_database, ensure_schema
from workers.couch.security import (
    check_databases,
    couchwatch_dbs,
    describe,
    is_open,
    merged_security,
    secure_databases,
    wanted_security,
)
from workers.settings import Settings

pytestmark = pytest.mark.unit

# --- recorded CouchDB 3.3 reply shapes ------------------------------------------------------

SESSION_ADMIN = (
    200,
    {
        "ok": True,
        "userCtx": {"name": USER, "roles": ["_admin"]},
        "info": {"authentication_handlers": ["cookie", "default"], "authenticated": "default"},
    },
)
SESSION_MEMBER = (
    200,
    {
        "ok": True,
        "userCtx": {"name": "cw-fleet", "roles": ["couchwatch"]},
        "info": {"authentication_handlers": ["cookie", "default"], "authenticated": "default"},
    },
)
# `[couchdb] default_security = admin_only` (the CouchDB 3 default) on a new database
ADMIN_ONLY = (200, {"members": {"roles": ["_admin"]}, "admins": {"roles": ["_admin"]}})
EVERYONE = (200, {})  # `default_security = everyone`, CouchDB 2, PouchDB Server
PUT_OK = (200, {"ok": True})
NOT_DB_ADMIN = (401, {"error": "unauthorized", "reason": "You are not a db or server admin."})
NOT_MEMBER = (403, {"error": "forbidden", "reason": "You are not allowed to access this db."})
NO_DB = (404, {"error": "not_found", "reason": "Database does not exist."})


def settings(**values: Any) -> Settings:
    base: dict[str, Any] = {
        "couchdb_url": "http://couch.test:5984",
        "couchdb_user": USER,
        "couchdb_password": PASSWORD,
        "couchwatch_events_db": "events",
    }
    return Settings(_env_file=None, **{**base, **values})  # type: ignore[arg-type]


def test_a_new_couchdb3_database_gets_the_admin_and_the_fleet() -> None:
    cfg = settings(couchwatch_db_member_names=["cw-fleet"])
    client, adapter = make_client([SESSION_ADMIN, ADMIN_ONLY, PUT_OK])
    assert secure_databases(client, cfg, ["events"]) == ["events"]
    session, get, put = adapter.sent
    assert (session.method, session.path) == ("GET", "/_session")
    assert (get.method, get.path, put.method, put.path) == (
        "GET",
        "/events/_security",
        "PUT",
        "/events/_security",
    )
    assert put.json == {
        "admins": {"roles": ["_admin"], "names": [USER]},
        "members": {"roles": ["_admin", "couchwatch"], "names": [USER, "cw-fleet"]},
    }
    assert put.headers["Content-Type"] == "application/json"


def test_a_database_already_secured_is_not_written_again() -> None:
    cfg = settings()
    done = (200, wanted_security(cfg, USER))
    client, adapter = make_client([SESSION_ADMIN, done, done])
    assert secure_databases(client, cfg, ["events", "couchwatch_runs"]) == []
    assert [s.method for s in adapter.sent] == ["GET", "GET", "GET"]


def test_an_open_database_is_closed_and_operator_grants_are_kept() -> None:
    cfg = settings()
    theirs = {
        "members": {"names": ["ops"], "roles": ["readers"]},
        "admins": {"names": [], "roles": []},
        "couchdb_auth_only": True,
    }
    client, adapter = make_client([SESSION_ADMIN, EVERYONE, PUT_OK, (200, theirs), PUT_OK])
    assert secure_databases(client, cfg, ["events", "couchwatch_runs"]) == [
        "events",
        "couchwatch_runs",
    ]
    opened, kept = adapter.sent[2].json, adapter.sent[4].json
    assert opened["members"] == {"names": [USER], "roles": ["_admin", "couchwatch"]}
    assert kept["members"] == {"names": ["ops", USER], "roles": ["readers", "_admin", "couchwatch"]}
    assert kept["admins"] == {"names": [USER], "roles": ["_admin"]}
    assert kept["couchdb_auth_only"] is True  # fields we do not know survive


def test_a_member_cannot_set_security_and_says_so_in_one_line() -> None:
    client, _ = make_client([SESSION_MEMBER, EVERYONE, NOT_DB_ADMIN])
    with pytest.raises(Unauthorized) as caught:
        secure_databases(client, settings(), ["events"])
    message = str(caught.value)
    assert "401" in message and "_security" in message and "\n" not in message
    assert PASSWORD not in message


def test_a_member_with_every_grant_in_place_writes_nothing() -> None:
    """The fleet's user runs `ensure_schema` paths too (`apikey create`): no admin needed then."""
    cfg = settings()
    done = (200, wanted_security(cfg, USER))
    client, adapter = make_client([SESSION_MEMBER, done])
    assert secure_databases(client, cfg, ["events"]) == []
    assert len(adapter.sent) == 2


def test_check_reports_open_lacking_missing_and_refused_databases() -> None:
    cfg = settings()
    dbs = ["events", "couchwatch_runs", "couchwatch_models", "couchwatch_quarantine"]
    client, _ = make_client(
        [SESSION_ADMIN, EVERYONE, ADMIN_ONLY, (200, wanted_security(cfg, USER)), NO_DB]
    )
    states = check_databases(client, cfg, dbs)
    assert [(s.db, s.open, s.exists, s.ok) for s in states] == [
        ("events", True, True, False),
        ("couchwatch_runs", False, True, False),  # CouchDB 3's admin-only: the fleet is out
        ("couchwatch_models", False, True, True),
        ("couchwatch_quarantine", False, False, False),
    ]
    assert "members.roles=couchwatch" in states[1].missing
    line = describe(states)
    assert line == (
        "missing databases: couchwatch_quarantine; open to anonymous clients (no _security "
        "members): events; fleet grants missing from _security: couchwatch_runs (run "
        "`couchwatch init` as a CouchDB admin)"
    )
    client, _ = make_client([SESSION_MEMBER, NOT_MEMBER])
    with pytest.raises(Unauthorized, match="403"):
        check_databases(client, cfg, ["events"])


def test_is_open_and_merge() -> None:
    assert is_open({}) and is_open({"members": {"names": [], "roles": []}})
    assert is_open({"admins": {"names": ["a"]}})  # admins alone do not keep anyone out
    assert not is_open(ADMIN_ONLY[1]) and not is_open({"members": {"names": ["x"]}})
    wanted = wanted_security(settings(), None)  # not a server admin: no name to add
    assert wanted["admins"] == {"names": [], "roles": ["_admin"]}
    assert merged_security({}, wanted) == wanted


def test_member_settings_parse_and_refuse_system_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COUCHWATCH_DB_MEMBER_NAMES", "cw-fleet, cw-api")
    monkeypatch.setenv("COUCHWATCH_DB_MEMBER_ROLES", "couchwatch,ops")
    cfg = Settings(_env_file=None)  # type: ignore[call-arg]
    assert cfg.couchwatch_db_member_names == ["cw-fleet", "cw-api"]
    assert cfg.couchwatch_db_member_roles == ["couchwatch", "ops"]
    for bad in ("_admin", "_reader"):
        monkeypatch.setenv("COUCHWATCH_DB_MEMBER_ROLES", bad)
        with pytest.raises(ValidationError):
            Settings(_env_file=None)  # type: ignore[call-arg]


def test_the_memory_twin_starts_admin_only_and_ensure_schema_secures_every_database() -> None:
    client, cfg = MemoryCouchClient(), settings()
    client.ensure_db("fresh")
    assert client.transport.request("GET", "/fresh/_security") == ADMIN_ONLY[1]
    ensure_schema(client, cfg)
    assert ensure_database(client, cfg, cfg.db_name("apikeys")) is False
    states = check_databases(client, cfg)
    assert [s.db for s in states] == couchwatch_dbs(cfg) and all(s.ok for s in states)
