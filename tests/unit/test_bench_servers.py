"""Which server a bench figure came from, and when the bench measures an Apache CouchDB 3."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from bench import report
from bench.runner import EXTERNAL_FLEET, plan, select
from bench.servers import external_couchdb, identify, is_couchdb3
from bench.sizes import PRESETS

pytestmark = pytest.mark.unit

# GET / of Apache CouchDB 3.3.3 (the compose file's image) and of PouchDB Server 4.2.0
COUCHDB3 = {
    "couchdb": "Welcome",
    "version": "3.3.3",
    "git_sha": "40afbcfc7",
    "uuid": "a7b4e6a6c0e3f5d2b1c9e8d7f6a5b4c3",
    "features": ["access-ready", "partitioned", "pluggable-storage-engines", "reshard"],
    "vendor": {"name": "The Apache Software Foundation"},
}
POUCHDB = {
    "express-pouchdb": "Welcome",
    "version": "4.2.0",
    "pouchdb-adapters": ["leveldb"],
    "vendor": {"name": "PouchDB authors", "version": "4.2.0"},
    "uuid": "4a1d3e2f-3b9c-4c5d-8e7f-6a5b4c3d2e1f",
}
SECRET = "s3cret-do-not-print"


def test_a_server_is_named_by_its_welcome_reply() -> None:
    assert identify(COUCHDB3) == "Apache CouchDB 3.3.3" and is_couchdb3(COUCHDB3)
    assert identify(POUCHDB) == "PouchDB Server 4.2.0" and not is_couchdb3(POUCHDB)
    assert not is_couchdb3({**COUCHDB3, "version": "2.3.1"})
    assert identify({"version": "1"}).startswith("unknown")


def _env(**extra: str) -> dict[str, str]:
    return {"COUCHDB_USER": "admin", "COUCHDB_PASSWORD": SECRET, **extra}


def test_only_an_apache_couchdb_3_is_measured_and_no_reason_shows_the_password() -> None:
    none, why = external_couchdb(_env())
    assert none is None and "COUCHDB_URL is not set" in why

    def refused(url: str, auth: Any) -> dict[str, Any]:
        raise requests.ConnectionError(f"refused {auth}")

    none, why = external_couchdb(_env(COUCHDB_URL="http://db:5984"), get_welcome=refused)
    assert none is None and "did not answer (ConnectionError)" in why and SECRET not in why
    none, why = external_couchdb(
        _env(COUCHDB_URL="http://db:5984"), get_welcome=lambda url, auth: POUCHDB
    )
    assert none is None and "PouchDB Server 4.2.0, not Apache CouchDB 3" in why
    seen: list[Any] = []
    found, why = external_couchdb(
        _env(COUCHDB_URL="http://db:5984/"),
        get_welcome=lambda url, auth: seen.append((url, auth)) or COUCHDB3,
    )
    assert found is not None and found.identity == "Apache CouchDB 3.3.3"
    assert found.url == "http://db:5984" and found.password == SECRET
    assert seen == [("http://db:5984/", ("admin", SECRET))]  # the welcome is asked with auth
    assert SECRET not in why and SECRET not in repr(found)


def test_the_fleet_section_runs_a_second_time_only_with_a_couchdb3() -> None:
    sizes = PRESETS["tiny"]
    assert EXTERNAL_FLEET not in {s.name for s in plan(sizes)}
    steps = plan(sizes, couchdb3=True)
    external = next(s for s in steps if s.name == EXTERNAL_FLEET)
    assert external.external and not external.needs_services  # not on the bench's own server
    assert [s.name for s in select(steps, ["fleet"])] == ["fleet", EXTERNAL_FLEET]


def _floor(server: str, ratio: float) -> dict[str, Any]:
    return {
        "server": server,
        "ratio_to_floor": ratio,
        "fleet_seconds": 2 * ratio,
        "floor_seconds": 2.0,
        "met": ratio <= 1.25,
    }


def test_the_report_names_the_server_of_each_fleet_figure() -> None:
    alone = report._fleet_rows(
        {"store_floor": _floor("PouchDB Server 4.2.0", 2.0), "couchdb3": "COUCHDB_URL is not set"}
    )
    assert "on PouchDB Server 4.2.0" in alone[0][1] and alone[0][3] == "**MISSED**"
    assert alone[1][0].endswith("(Apache CouchDB 3)") and alone[1][1] == "COUCHDB_URL is not set"
    both = report._fleet_rows(
        {
            "store_floor": _floor("PouchDB Server 4.2.0", 2.0),
            "store_floor_couchdb3": _floor("Apache CouchDB 3.3.3", 1.1),
        }
    )
    assert "on Apache CouchDB 3.3.3" in both[1][1] and both[1][3] == "**met**"
