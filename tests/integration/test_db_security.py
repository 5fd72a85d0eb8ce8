"""`_security` on every couchwatch database, on the real PouchDB Server (issue 13, item 1).

`couchwatch init` restricts each database to the admin and the fleet's members. Then every
way in we know of is tried against every database, anonymously, with a wrong password and as a
valid user who is no member: documents (`apikey-*` with scope admin, an anomaly's review), `_local`
checkpoints, `_find`/`_index`/`_explain`, `_changes`, `_bulk_docs`, design documents, `_security`
and deleting the database. Each must be refused (401/403, or a `_bulk_docs` row error) and
nothing may change. The patched PouchDB Server (patches/) is what enforces it: see
docs/reliability.md for what it did not enforce before.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from couchwatch.stack import local, processes
from couchwatch.stack.processes import free_port, port_open, wait_for
from tests.conftest import settings_env
from tests.support.services import ROOT, CouchServer
from workers.couch.client import CouchClient
from workers.couch.security import couchwatch_dbs, get_security, put_security
from workers.settings import Settings

pytestmark = pytest.mark.integration

OUTSIDER, OUTSIDER_PW = f"cw-nobody-{uuid.uuid4().hex[:6]}", "Nobody-pw-38sk"
FLEET, FLEET_PW = "cw-fleet", "Fleet-pw-91qe"  # named in COUCHWATCH_DB_MEMBER_NAMES
ROLED, ROLED_PW = "cw-roled", "Roled-pw-27xv"  # given the role `couchwatch` by the admin
APIKEY = {"type": "apikey", "scopes": ["admin"], "salt": "00", "hash": "ff", "name": "evil"}


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "couchwatch.cli.main", *args],
        env={**os.environ, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def _user(couchdb: CouchServer, name: str, password: str, roles: list[str]) -> None:
    url = f"{couchdb.url}/_users/org.couchdb.user:{name}"
    admin = (couchdb.user, couchdb.password)
    old = requests.get(url, auth=admin, timeout=30)
    body: dict[str, Any] = {"name": name, "password": password, "roles": roles, "type": "user"}
    if old.ok:
        body["_rev"] = old.json()["_rev"]
    assert requests.put(url, json=body, auth=admin, timeout=30).status_code in (201, 202)


def _attempts(seed_rev: str) -> list[tuple[str, str, str, Any]]:
    """(label, method, path under the database, JSON body) of every way in we try."""
    return [
        ("PUT apikey-* doc", "PUT", "/apikey-evil", APIKEY),
        ("POST doc", "POST", "", APIKEY),
        ("overwrite doc", "PUT", "/seed", {"_rev": seed_rev, "review": {"status": "dismissed"}}),
        ("DELETE doc", "DELETE", f"/seed?rev={seed_rev}", None),
        ("_bulk_docs", "POST", "/_bulk_docs", {"docs": [{"_id": "bulk-evil"}, APIKEY]}),
        ("PUT _local checkpoint", "PUT", "/_local/planner", {"seq": "0"}),
        ("DELETE _local", "DELETE", "/_local/seed?rev=0-1", None),
        ("PUT _local/_security", "PUT", "/_local/_security", {"security": {}}),
        ("PUT _design doc", "PUT", "/_design/evil", {"views": {}}),
        ("POST _index", "POST", "/_index", {"index": {"fields": ["x"]}, "name": "evil"}),
        ("PUT _security", "PUT", "/_security", {}),
        ("DELETE database", "DELETE", "", None),
        ("POST _compact", "POST", "/_compact", {}),
        ("GET doc", "GET", "/seed", None),
        ("GET _local", "GET", "/_local/seed", None),
        ("GET database info", "GET", "", None),
        ("GET _all_docs", "GET", "/_all_docs?include_docs=true", None),
        ("POST _all_docs keys", "POST", "/_all_docs?include_docs=true", {"keys": ["seed"]}),
        ("POST _find", "POST", "/_find", {"selector": {}, "limit": 100}),
        ("POST _explain", "POST", "/_explain", {"selector": {}, "limit": 100}),
        ("GET _index", "GET", "/_index", None),
        ("GET _changes", "GET", "/_changes?include_docs=true", None),
        ("POST _bulk_get", "POST", "/_bulk_get", {"docs": [{"id": "seed"}]}),
        ("POST _revs_diff", "POST", "/_revs_diff", {"seed": [seed_rev]}),
        ("GET _security", "GET", "/_security", None),
        ("PUT attachment", "PUT", f"/seed/model.pkl?rev={seed_rev}", b"planted"),
        ("GET attachment", "GET", "/seed/model.pkl", None),
    ]


def _refused(reply: requests.Response) -> bool:
    if reply.status_code in (401, 403):
        return True
    if reply.status_code == 201 and isinstance(reply.json(), list):  # _bulk_docs: per row
        return all("error" in row for row in reply.json())
    return False


def _snapshot(admin: CouchClient, db: str) -> dict[str, Any]:
    """Everything an attack could change in `db`, read by the admin."""
    docs = admin.transport.request("GET", f"/{db}/_all_docs", params={"include_docs": "true"})
    return {
        "docs": sorted(json.dumps(r["doc"], sort_keys=True) for r in docs["rows"]),
        "local": admin.get_local(db, "seed"),
        "security": get_security(admin, db),
        "planner": admin.get_local(db, "planner"),
    }


@pytest.fixture
def initialised(settings: Settings, couch: CouchClient) -> Iterator[Settings]:
    """`couchwatch init` (the real CLI, as the admin) with a named fleet member."""
    cfg = settings.model_copy(update={"couchwatch_db_member_names": [FLEET]})
    env = {**settings_env(cfg), "COUCHWATCH_DB_MEMBER_NAMES": FLEET}
    done = _cli(env, "init")
    assert done.returncode == 0, done.stderr
    assert "_security restricts all 8 couchwatch databases" in done.stdout, done.stdout
    yield cfg


def test_every_database_refuses_anonymous_and_outsider_reads_and_writes(
    couchdb: CouchServer, initialised: Settings, couch: CouchClient
) -> None:
    cfg, url = initialised, couchdb.url
    dbs = couchwatch_dbs(cfg)
    for db in dbs:
        rev = couch.put(db, {"_id": "seed", "type": "anomaly", "review": {"status": "confirmed"}})
        couch.put_attachment(db, "seed", rev, "model.pkl", b"model", "application/octet-stream")
        couch.put_local(db, "seed", {"seq": "7"})
    # anyone may sign up in `_users` (as on CouchDB), but never with a role
    signup = f"{url}/_users/org.couchdb.user:{OUTSIDER}"
    doc = {"name": OUTSIDER, "password": OUTSIDER_PW, "type": "user"}
    for role in ("couchwatch", "_admin"):
        assert requests.put(signup, json={**doc, "roles": [role]}, timeout=30).status_code == 403
    assert requests.put(signup, json={**doc, "roles": []}, timeout=30).status_code == 201
    before = {db: _snapshot(couch, db) for db in dbs}

    who = {
        "anonymous": None,
        "wrong password": (couchdb.user, "Wrong-pw-3k"),
        "outsider": (OUTSIDER, OUTSIDER_PW),
    }
    tried, refused, leaks = Counter[str](), Counter[str](), []
    for db in dbs:
        seed_rev = couch.get(db, "seed")["_rev"]  # type: ignore[index]
        for label, method, path, body in _attempts(seed_rev):
            for name, auth in who.items():
                kind = "data" if isinstance(body, bytes) else "json"
                reply = requests.request(
                    method, f"{url}/{db}{path}", auth=auth, timeout=30, **{kind: body}
                )
                tried[name] += 1
                if _refused(reply):
                    refused[name] += 1
                else:
                    leaks.append(f"{name} {label} on {db}: {reply.status_code} {reply.text[:80]}")
    assert not leaks, "\n".join(leaks[:40]) + f"\n... {len(leaks)} requests not refused"
    assert requests.get(f"{url}/", timeout=10).ok  # a refused DELETE once killed the server
    assert {db: _snapshot(couch, db) for db in dbs} == before  # nothing changed anywhere
    assert (
        requests.post(
            f"{url}/_users/_find", json={"selector": {}, "limit": 5}, timeout=30
        ).status_code
        == 401
    )  # password hashes stay hidden

    # the fleet's grants work: a named member and a holder of the role read and write,
    # but cannot make themselves db admins (design docs, `_security`, `_local/_security`)
    _user(couchdb, FLEET, FLEET_PW, [])
    _user(couchdb, ROLED, ROLED_PW, ["couchwatch"])
    db = cfg.db_name("runs")
    for auth in ((FLEET, FLEET_PW), (ROLED, ROLED_PW)):
        assert (
            requests.put(
                f"{url}/{db}/run-{auth[0]}", json={"x": 1}, auth=auth, timeout=30
            ).status_code
            == 201
        )
        assert (
            requests.post(
                f"{url}/{db}/_find", json={"selector": {}, "limit": 5}, auth=auth, timeout=30
            ).status_code
            == 200
        )
        assert (
            requests.put(
                f"{url}/{db}/_local/planner", json={"seq": "1"}, auth=auth, timeout=30
            ).status_code
            == 201
        )
        requests.delete(f"{url}/{db}/_local/planner?rev=0-1", auth=auth, timeout=30)
        for path, body in (
            ("/_design/x", {"views": {}}),
            ("/_security", {}),
            ("/_local/_security", {"security": {}}),
        ):
            reply = requests.put(f"{url}/{db}{path}", json=body, auth=auth, timeout=30)
            assert reply.status_code in (401, 403), (auth[0], path, reply.status_code)
    total = sum(tried.values())
    print(
        f"\n[db security] {len(dbs)} databases x {len(_attempts('1-x'))} requests x "
        f"{len(who)} clients: {sum(refused.values())} of {total} refused "
        f"({dict(refused)}); role and admin sign-ups refused; nothing changed"
    )


def test_init_and_status_find_and_fix_open_databases(
    couchdb: CouchServer, initialised: Settings, couch: CouchClient, tmp_path: Path
) -> None:
    cfg = initialised
    env = {
        **settings_env(cfg),
        "COUCHWATCH_DB_MEMBER_NAMES": FLEET,
        "COUCHWATCH_STATE_DIR": str(tmp_path / "state"),
    }
    ok = _cli(env, "status")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert _row(ok.stdout, "security")[1] == "ok"

    opened, lacking = cfg.db_name("quarantine"), cfg.db_name("runs")
    put_security(couch, opened, {})  # open again: what PouchDB Server does by default
    put_security(couch, lacking, {"members": {"names": ["someone-else"]}})
    assert requests.get(f"{couchdb.url}/{opened}/_all_docs", timeout=30).status_code == 200
    bad = _cli(env, "status")
    row = _row(bad.stdout, "security")
    assert bad.returncode == 1 and row[1] == "problem", bad.stdout
    assert f"open to anonymous clients (no _security members): {opened}" in bad.stdout
    assert f"fleet grants missing from _security: {lacking}" in bad.stdout

    # init as a member cannot set _security: one line, no traceback, nothing opened
    member_env = {**env, "COUCHDB_USER": FLEET, "COUCHDB_PASSWORD": FLEET_PW}
    _user(couchdb, FLEET, FLEET_PW, [])
    denied = _cli(member_env, "init")
    assert denied.returncode == 1 and "Traceback" not in denied.stderr, denied.stderr
    assert len(denied.stderr.strip().splitlines()) == 1

    fixed = _cli(env, "init")
    assert fixed.returncode == 0 and "restricts all 8" in fixed.stdout, fixed.stderr
    assert requests.get(f"{couchdb.url}/{opened}/_all_docs", timeout=30).status_code == 401
    kept = get_security(couch, lacking)
    assert "someone-else" in kept["members"]["names"] and FLEET in kept["members"]["names"]
    assert _row(_cli(env, "status").stdout, "security")[1] == "ok"
    print(
        f"\n[db security] status: exit 1 naming {opened} (open) and {lacking} (grants "
        f"missing); init as a member refused in one line; init as admin fixed both, "
        f"kept the operator's own member"
    )


def _row(out: str, name: str) -> list[str]:
    rows = [line.split() for line in out.splitlines() if line.split()[:1] == [name]]
    assert rows, out
    return rows[0]


def test_local_stack_pouchdb_config_and_data_are_private(tmp_path: Path) -> None:
    """`couchwatch up`'s PouchDB Server: config.json (the admin hash) 0600, its data dir 0700,
    before and after a restart; and `init` on it leaves no database open."""
    state = tmp_path / "state"
    password = "Stack-pw-60hd"
    values: dict[str, Any] = {
        "couchdb_url": f"http://127.0.0.1:{free_port()}",
        "couchdb_user": "stackadmin",
        "couchdb_password": password,
        "couchwatch_state_dir": str(state),
        "couchwatch_events_db": "stack_events",
    }
    settings = Settings(_env_file=None, **values)  # type: ignore[call-arg]
    env = local.child_env(settings)
    said: list[str] = []
    modes = []
    try:
        for _ in range(2):  # first start, then a restart over the existing config
            local.up_couchdb(settings, ROOT, state, env, said.append)
            config, data = state / "couchdb" / "config.json", state / "couchdb"
            modes.append((stat.S_IMODE(config.stat().st_mode), stat.S_IMODE(data.stat().st_mode)))
            text = config.read_text()
            assert password not in text and "-pbkdf2-" in text  # PouchDB Server hashed it
            record = processes.load(state, "couchdb")
            assert record is not None
            processes.stop(state, record)
            port = record.port or 0
            wait_for(
                lambda port=port: not port_open("127.0.0.1", port),
                timeout_s=10,
                what="PouchDB Server's port to close",
            )
        assert modes == [(0o600, 0o700), (0o600, 0o700)], [tuple(map(oct, m)) for m in modes]
        local.up_couchdb(settings, ROOT, state, env, said.append)
        done = _cli({**settings_env(settings), "COUCHWATCH_STATE_DIR": str(state)}, "init")
        assert done.returncode == 0 and "restricts all 8" in done.stdout, done.stderr
        for db in couchwatch_dbs(settings):
            for method, path in (
                ("PUT", "/apikey-evil"),
                ("GET", "/_all_docs"),
                ("POST", "/_find"),
            ):
                reply = requests.request(
                    method,
                    f"{settings.couchdb_url}/{db}{path}",
                    json={"selector": {}, "limit": 1},
                    timeout=30,
                )
                assert reply.status_code == 401, (db, method, path, reply.status_code)
    finally:
        record = processes.load(state, "couchdb")
        if record is not None:
            processes.stop(state, record)
    print(
        f"\n[db security] local stack: config.json {oct(modes[0][0])}, data dir "
        f"{oct(modes[0][1])} (also after a restart); 8 databases refuse anonymous PUT, "
        f"_all_docs and _find"
    )
