"""Security on real processes (issue 7, "Security"; results in docs/reliability.md).

- CouchDB requires authentication; the fleet runs as a non-admin *member* user of its databases
  (PouchDB Server enforces `_security` members: checked here, not assumed).
- No credential (CouchDB member password, Redis password, Flower password) appears in worker or
  Flower logs, run records, Redis, Flower's task listing or CLI errors, also after an induced
  CouchDB error.
- A planted pickle in the model store is refused by a real worker and reported in the run record.
- Webhook signatures: replayed, tampered, future and wrong-secret requests are rejected.
- SMTP: STARTTLS (and implicit TLS) against a real aiosmtpd server with a self-signed certificate
  made by the `openssl` CLI (the `cryptography` package is not installed); a server without
  STARTTLS, or an untrusted certificate, means no delivery, never a plaintext one.
- Producer requests are validated before they reach the queue: the Redis queues are unchanged.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import smtplib
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from aiosmtpd.controller import Controller

from couchwatch.stack.processes import free_port
from scheduler import client as producer
from tests.conftest import make_settings, settings_env
from tests.integration.test_fleet_resilience import _recent_demo
from tests.integration.test_producer_and_flower import flower_process
from tests.support.fleet import worker_fleet
from tests.support.services import ROOT, CouchServer, RedisServer, redis_server
from tests.support.waiting import wait_run
from workers.celery_app import QUEUES
from workers.couch.client import CouchClient, MissingCredentials
from workers.couch.errors import Unauthorized
from workers.couch.schema import ensure_schema
from workers.couch.transport import CouchTransport
from workers.notify.errors import DeliveryError
from workers.notify.message import Message
from workers.notify.signature import sign, verify_signature
from workers.notify.smtp import SmtpChannel, SmtpConfig
from workers.settings import DB_SUFFIXES, Settings, get_settings
from workers.store.models import ModelStore

pytestmark = pytest.mark.integration

MEMBER, MEMBER_PW = "cw-member", "Mbr-pw-Zq81x7"
OUTSIDER, OUTSIDER_PW = "cw-outsider", "Out-pw-Kv40m2"
REDIS_PW = "Rds-pw-Hc55t9"
FLOWER_USER, FLOWER_PW = "ops", "Flw-pw-Wn63b1"
SECRETS = (MEMBER_PW, REDIS_PW, FLOWER_PW, OUTSIDER_PW)
PLAN, SCORE, TRAIN = (
    "couchwatch.plan_scoring",
    "couchwatch.score_entities",
    "couchwatch.train_entities",
)
COUCHWATCH = [sys.executable, "-m", "couchwatch.cli.main"]


# --- helpers -------------------------------------------------------------------------------


def _admin(couchdb: CouchServer) -> tuple[str, str]:
    return couchdb.user, couchdb.password


def _make_user(couchdb: CouchServer, name: str, password: str) -> None:
    doc_url = f"{couchdb.url}/_users/org.couchdb.user:{name}"
    existing = requests.get(doc_url, auth=_admin(couchdb), timeout=30)
    body = {"name": name, "password": password, "roles": [], "type": "user"}
    if existing.ok:
        body["_rev"] = existing.json()["_rev"]
    reply = requests.put(doc_url, json=body, auth=_admin(couchdb), timeout=30)
    assert reply.status_code in (201, 202), reply.text


def _set_members(couchdb: CouchServer, db: str, names: list[str]) -> None:
    security = {"admins": {"names": [], "roles": []}, "members": {"names": names, "roles": []}}
    reply = requests.put(
        f"{couchdb.url}/{db}/_security", json=security, auth=_admin(couchdb), timeout=30
    )
    assert reply.ok, reply.text


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COUCHWATCH, *args],
        env={**os.environ, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def _redis_dump(url: str) -> str:
    """Every key and value in the Redis database (queues, results, locks) as text."""
    r = redis.Redis.from_url(url)
    parts: list[str] = []
    for key in r.scan_iter(count=500):
        raw_kind: Any = r.type(key)
        kind = raw_kind.decode() if isinstance(raw_kind, bytes) else str(raw_kind)
        if kind == "string":
            value: Any = r.get(key)
        elif kind == "list":
            value = r.lrange(key, 0, -1)
        elif kind == "hash":
            value = r.hgetall(key)
        elif kind == "set":
            value = r.smembers(key)
        elif kind == "zset":
            value = r.zrange(key, 0, -1)
        else:
            value = kind
        parts.append(f"{key!r}={value!r}")
    return "\n".join(parts)


def _assert_clean(where: str, text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} found in {where}"


# --- 1. authentication required ------------------------------------------------------------


def test_couchdb_requires_auth(
    couchdb: CouchServer, settings: Settings, couch: CouchClient
) -> None:
    ensure_schema(couch, settings)
    db = settings.events_db
    assert requests.put(f"{couchdb.url}/anon_{db}", timeout=30).status_code == 401
    # PouchDB Server (like CouchDB 2) lets anyone read a database without `_security` members;
    # ensure_schema sets them on every couchwatch database (test_db_security.py tries it all)
    assert requests.get(f"{couchdb.url}/{db}/_all_docs", timeout=30).status_code == 401
    _set_members(couchdb, db, [couchdb.user])
    assert requests.get(f"{couchdb.url}/{db}/_all_docs", timeout=30).status_code == 401
    # PouchDB Server lists database names to anyone (CouchDB 3: admin only); names only
    assert requests.get(f"{couchdb.url}/_all_dbs", timeout=30).status_code == 200
    wrong = CouchClient(
        CouchTransport(couchdb.url, auth=(couchdb.user, "Wrong-pw-Jd20"), retries=0)
    )
    for read in (
        lambda: wrong.db_info(db),
        lambda: wrong.get(db, "x"),
        lambda: list(wrong.iter_all_docs(db)),
    ):
        with pytest.raises(Unauthorized) as caught:
            read()
        assert "401" in str(caught.value) and "Wrong-pw-Jd20" not in str(caught.value)
    with pytest.raises(MissingCredentials):
        CouchClient(CouchTransport(couchdb.url, auth=None))
    # the CLI with a wrong password: one error line, no password, no traceback
    env = {**settings_env(settings), "COUCHDB_PASSWORD": "Wrong-pw-Jd20"}
    done = _cli(env, "anomalies")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "401" in done.stderr and "Wrong-pw-Jd20" not in done.stderr + done.stdout
    # credentials in COUCHDB_URL instead of COUCHDB_USER/PASSWORD: errors name the URL bare
    url_env = {
        **settings_env(settings),
        "COUCHDB_USER": "",
        "COUCHDB_PASSWORD": "",
        "COUCHDB_URL": couchdb.url.replace("://", f"://{couchdb.user}:Wrong-pw-Jd20@"),
    }
    done = _cli(url_env, "anomalies")
    assert done.returncode == 1 and "Wrong-pw-Jd20" not in done.stderr + done.stdout, done.stderr


# --- 2. a member user runs the fleet; nothing leaks ------------------------------------------


@dataclass
class Secured:
    settings: Settings
    admin: CouchClient
    member: CouchClient
    dbs: list[str] = field(default_factory=list)


@pytest.fixture
def secured(couchdb: CouchServer, tmp_path: Path) -> Iterator[tuple[Secured, RedisServer]]:
    """Databases created by the admin; the fleet's settings hold only the member's credentials
    and a password-protected Redis."""
    with redis_server(tmp_path / "redis", password=REDIS_PW) as own_redis:
        _make_user(couchdb, MEMBER, MEMBER_PW)
        _make_user(couchdb, OUTSIDER, OUTSIDER_PW)
        cfg = make_settings(
            couchdb,
            own_redis.url,
            couchdb_user=MEMBER,
            couchdb_password=MEMBER_PW,
            couchwatch_batch_size=2,
        )
        admin_cfg = cfg.model_copy(update={"couchdb_user": couchdb.user})
        admin = CouchClient(CouchTransport(couchdb.url, auth=_admin(couchdb)))
        ensure_schema(admin, admin_cfg)
        dbs = [cfg.events_db, *(cfg.db_name(s) for s in DB_SUFFIXES)]
        for db in dbs:
            _set_members(couchdb, db, [MEMBER])
        member = CouchClient.from_settings(cfg)
        try:
            yield Secured(cfg, admin, member, dbs), own_redis
        finally:
            for db in dbs:
                admin.delete_db(db)
            admin.close()
            member.close()


def test_member_user_fleet_leaks_no_credentials(
    couchdb: CouchServer, secured: tuple[Secured, RedisServer], tmp_path: Path
) -> None:
    sec, _ = secured
    cfg, member = sec.settings, sec.member
    url = couchdb.url
    # PouchDB Server enforces `_security`: the member is no admin, an outsider is not let in
    assert member.session_user() == MEMBER
    assert (
        requests.put(f"{url}/{cfg.events_db}x", auth=(MEMBER, MEMBER_PW), timeout=30).status_code
        == 401
    )
    assert (
        requests.put(
            f"{url}/{cfg.events_db}/_design/evil",
            json={"views": {}},
            auth=(MEMBER, MEMBER_PW),
            timeout=30,
        ).status_code
        == 401
    )
    assert (
        requests.put(
            f"{url}/{cfg.events_db}/_security",
            json={"members": {"names": []}},
            auth=(MEMBER, MEMBER_PW),
            timeout=30,
        ).status_code
        == 401
    )
    for where in (cfg.events_db, f"{cfg.events_db}/_all_docs", f"{cfg.db_name('models')}/_changes"):
        assert (
            requests.get(f"{url}/{where}", auth=(OUTSIDER, OUTSIDER_PW), timeout=30).status_code
            == 401
        )

    scenario = _recent_demo(users=3, days=4, seed=97)
    users = sorted({e["user_id"] for e in scenario.events})
    events_file = tmp_path / "events.jsonl"
    events_file.write_text("".join(json.dumps(e) + "\n" for e in scenario.events))
    env = settings_env(cfg)
    logs = tmp_path / "logs"
    flower_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FLOWER_")},
        **env,
        "FLOWER_USER": FLOWER_USER,
        "FLOWER_PASSWORD": FLOWER_PW,
    }
    logs.mkdir()
    with (
        flower_process(flower_env, free_port(), logs) as flower,
        worker_fleet(cfg, env, logs) as fleet,
    ):
        # a producer (the member) ingests with the CLI; the fleet plans, trains, scores
        # `couchwatch ingest` runs ensure_schema, which writes design documents: admin only
        denied = _cli(env, "ingest", "--quiet", str(events_file))
        assert denied.returncode == 1 and "401" in denied.stderr, denied.stderr
        assert "Traceback" not in denied.stderr
        admin_env = {**env, "COUCHDB_USER": couchdb.user, "COUCHDB_PASSWORD": couchdb.password}
        done = _cli(admin_env, "ingest", "--quiet", str(events_file))
        assert done.returncode == 0, done.stderr
        app = fleet.app()
        plan = wait_run(member, cfg, app.send_task(PLAN, kwargs={"force": True}).id)
        scores = [wait_run(member, cfg, t) for t in plan["details"]["task_ids"]]
        tplan = wait_run(
            member, cfg, app.send_task("couchwatch.plan_training", kwargs={"force": True}).id
        )
        trains = [wait_run(member, cfg, t, 240) for t in tplan["details"]["task_ids"]]
        whole = [[u, None, None] for u in users]
        rescore = wait_run(member, cfg, app.send_task(SCORE, args=[whole]).id)
        runs = [plan, *scores, tplan, *trains, rescore]
        assert all(r["outcome"] == "succeeded" for r in runs), [
            (r["task"], r["outcome"], r["error"], r["entity_errors"]) for r in runs
        ]

        # a planted pickle in the model store: refused by the worker, reported, not executed
        marker = tmp_path / "pwned"

        class Planted:
            def __reduce__(self) -> tuple[object, tuple[str]]:
                return (os.system, (f"touch {marker}",))

        ModelStore(member, cfg.db_name("models")).save(
            users[0], "req-evil", pickle.dumps(Planted()), {}
        )
        evil = wait_run(member, cfg, app.send_task(SCORE, args=[[[users[0], None, None]]]).id)
        assert evil["details"].get("unsafe_models") == [users[0]], evil
        assert evil["outcome"] == "succeeded" and not marker.exists()

        # an induced CouchDB error: the member is dropped from the events database
        _set_members(couchdb, cfg.events_db, ["somebody-else"])
        try:
            broken = wait_run(member, cfg, app.send_task(PLAN, kwargs={"force": True}).id)
            cli_err = _cli(env, "train", "--entity", "nobody")
            ingest_err = _cli(env, "ingest", "--quiet", str(events_file))
        finally:
            _set_members(couchdb, cfg.events_db, [MEMBER])
        assert broken["outcome"] == "failed" and "401" in (broken["error"] or ""), broken
        assert ingest_err.returncode == 1 and "401" in ingest_err.stderr, ingest_err.stderr
        assert "Traceback" not in ingest_err.stderr

        # Flower: no anonymous API; its task listing carries entity ids, never credentials
        assert requests.get(f"{flower}/api/tasks", timeout=30).status_code == 401
        time.sleep(2)
        listing = requests.get(f"{flower}/api/tasks", auth=(FLOWER_USER, FLOWER_PW), timeout=60)
        assert listing.status_code == 200
        tasks = listing.json()
        assert {t["name"] for t in tasks.values()} >= {PLAN, TRAIN, SCORE}
        assert any(repr(users[0]) in (t.get("args") or "") for t in tasks.values())
        redis_text = _redis_dump(cfg.redis_url)

    # nothing anywhere carries a credential
    all_runs = list(sec.admin.iter_all_docs(cfg.db_name("runs")))
    log_files = sorted(logs.glob("*.log"))
    assert {p.name for p in log_files} >= {"w1.log", "w2.log", "flower.log"}
    assert "401" in "".join(p.read_text(errors="replace") for p in log_files)  # the error is there
    for path in log_files:
        _assert_clean(str(path), path.read_text(errors="replace"))
    _assert_clean("run records", json.dumps(all_runs))
    _assert_clean("Flower /api/tasks", listing.text)
    _assert_clean("Redis keys and values", redis_text)
    for name, proc in (("CLI train", cli_err), ("CLI ingest", ingest_err), ("denied", denied)):
        _assert_clean(name, proc.stdout + proc.stderr)
    _assert_clean(
        "quarantine", json.dumps(list(sec.admin.iter_all_docs(cfg.db_name("quarantine"))))
    )
    print(
        f"\n[security] member fleet: {len(runs)} runs succeeded; planted pickle refused "
        f"({evil['details']['unsafe_models']}); induced error {broken['error'][:80]!r}; "
        f"{len(log_files)} logs, {len(all_runs)} run records, {len(tasks)} Flower tasks, "
        f"{len(redis_text)} bytes of Redis clean"
    )


# --- 3. webhook signatures -------------------------------------------------------------------


def test_webhook_signature_rejects_replay_tamper_and_wrong_secret() -> None:
    secret, body, now = "whsec-Pq72", b'{"anomaly":"a-1","score":0.97}', 1_800_000_000
    header = sign(secret, body, timestamp=now)
    assert verify_signature(secret, header, body, now=now + 10)
    assert not verify_signature(secret, header, body, now=now + 301)  # replayed later
    assert not verify_signature(secret, header, body, now=now - 301)  # from the future
    assert not verify_signature(secret, header, body + b" ", now=now)  # tampered body
    assert not verify_signature(secret, header, body.replace(b"0.97", b"0.01"), now=now)
    assert not verify_signature("other-secret", header, body, now=now)
    forged_time = header.replace(f"t={now}", f"t={now + 1000}")  # fresh stamp, old digest
    assert not verify_signature(secret, forged_time, body, now=now + 1000)
    flipped = header[:-1] + ("0" if header[-1] != "0" else "1")
    assert not verify_signature(secret, flipped, body, now=now)
    for junk in (None, "", "t=abc,v1=00", "v1=" + "0" * 64, f"t={now}", "garbage"):
        assert not verify_signature(secret, junk, body, now=now)


# --- 4. SMTP over TLS ------------------------------------------------------------------------


class _Inbox:
    def __init__(self) -> None:
        self.tls: list[bool] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.tls.append(session.ssl is not None)
        return "250 OK"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    assert openssl, "openssl CLI missing (and `cryptography` is not installed)"
    tmp = tmp_path_factory.mktemp("tls")
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


def _message() -> Message:
    return Message(
        subject="[couchwatch] high: user000",
        text="unusual login",
        html="<p>x</p>",
        payload={"anomaly": "a-1"},
        delivery_id="d:a-1:email",
    )


def test_smtp_starttls_and_ssl_are_used_and_verified(
    certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    def config(port: int, **kw: Any) -> SmtpConfig:
        return SmtpConfig(
            host="127.0.0.1",
            port=port,
            sender="cw@test.local",
            recipients=("ops@test.local",),
            timeout_s=10,
            **kw,
        )

    inbox = _Inbox()
    starttls = Controller(
        inbox, hostname="127.0.0.1", port=free_port(), tls_context=context, require_starttls=True
    )
    implicit = Controller(inbox, hostname="127.0.0.1", port=free_port(), ssl_context=context)
    plain_inbox = _Inbox()
    plain = Controller(plain_inbox, hostname="127.0.0.1", port=free_port())
    for c in (starttls, implicit, plain):
        c.start()
    try:
        # without trusting the self-signed certificate: refused, nothing sent in the clear
        with pytest.raises(DeliveryError, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify"):
            SmtpChannel(config(starttls.port, starttls=True)).send(_message())
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # how an operator trusts a private CA
        SmtpChannel(config(starttls.port, starttls=True)).send(_message())
        SmtpChannel(config(implicit.port, starttls=False, ssl=True)).send(_message())
        # the STARTTLS session is encrypted (aiosmtpd sets `session.ssl` after STARTTLS only;
        # the implicit-TLS port speaks nothing but TLS, see the refused untrusted case above)
        assert inbox.tls[0] is True and len(inbox.tls) == 2
        # STARTTLS configured but the server does not offer it: no plaintext fallback
        with pytest.raises(DeliveryError, match="STARTTLS"):
            SmtpChannel(config(plain.port, starttls=True)).send(_message())
        assert plain_inbox.tls == []
        # and the server side: a client that skips STARTTLS is refused by require_starttls
        with smtplib.SMTP("127.0.0.1", starttls.port, timeout=10) as raw:
            code, _ = raw.mail("cw@test.local")
        assert code == 530
    finally:
        for c in (starttls, implicit, plain):
            c.stop()


# --- 5. producer requests validated before the queue ------------------------------------------


def test_bad_producer_requests_never_reach_the_queue(
    redis_service: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = redis_service.url.rsplit("/", 1)[0] + "/13"
    broker = redis.Redis.from_url(url)
    broker.flushdb()
    monkeypatch.setenv("REDIS_URL", url)
    get_settings.cache_clear()
    producer.producer_app.cache_clear()
    now = datetime.now(UTC)
    bad: list[tuple[Any, Any, Any]] = [
        ("x" * 257, None, None),
        ("", None, None),
        ("a\nb", None, None),
        ("a\x00b", None, None),
        (True, None, None),
        (None, None, None),
        (1.5, None, None),
        (["alice"], None, None),
        ({"$ne": None}, None, None),
        (2**53, None, None),
        ("alice", "NaN", None),
        ("alice", "inf", None),
        ("alice", 1e308, None),
        ("alice", "yesterday", None),
        ("alice", "2026-01-01T00:00:00", None),  # no offset
        ("alice", "1999-12-31T23:59:59Z", None),
        ("alice", -1, None),
        ("alice", None, (now + timedelta(days=3)).isoformat()),
        ("alice", "2026-01-02T00:00:00Z", "2026-01-01T00:00:00Z"),  # start after end
        ("alice", now - timedelta(days=400), now),  # range too long
        ("alice", datetime(2026, 1, 1), None),  # naive datetime
        ("alice", True, None),
        ("alice", ["2026-01-01"], None),
        ("alice", "9" * 5000, None),
    ]
    try:
        before = {q: broker.llen(q) for q in QUEUES}, broker.dbsize()
        for entity, start, end in bad:
            with pytest.raises(producer.BadRequest) as caught:
                producer.rescore(entity, start, end)
            assert "\n" not in str(caught.value)
        bad_train: list[Any] = ["x" * 300, True, None, {"$gt": ""}]
        for entity in bad_train:
            with pytest.raises(producer.BadRequest):
                producer.train(entity)
        with pytest.raises(producer.BadRequest):
            producer.job_status("x" * 300)
        after = {q: broker.llen(q) for q in QUEUES}, broker.dbsize()
        assert after == before, (before, after)
        # the same client does enqueue a good request (the check above watches the right queue),
        # and any id ingest stores, spaces around it included (one rule: entity_problem)
        producer.rescore("$gt", now - timedelta(days=1), now)
        producer.rescore(" alice", now - timedelta(days=1), now)
        assert broker.llen("score") == before[0]["score"] + 2
    finally:
        get_settings.cache_clear()
        producer.producer_app.cache_clear()
        broker.flushdb()
    print(
        f"\n[producer] {len(bad)} bad rescore + 4 bad train + 1 bad job id requests refused; "
        f"queues and DBSIZE unchanged; one good request enqueued"
    )
