"""The local stack behind `couchwatch up | down | status` and `make demo`.

PouchDB Server (a CouchDB-compatible server from npm) with an admin user and its data under
`.couchwatch/`, redis-server, two Celery workers, beat, Flower with basic auth and the API with
the review page (on 127.0.0.1). A CouchDB or Redis already answering at `COUCHDB_URL`/`REDIS_URL`
is used instead of starting one.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import redis
import requests

from couchwatch.stack import mail, processes
from couchwatch.stack.processes import port_open, wait_for
from workers.couch.client import CouchClient
from workers.couch.errors import CouchError
from workers.couch.security import check_databases, describe
from workers.settings import Settings

WORKERS = ("worker1", "worker2")
ORDER = ("couchdb", "redis", "smtp", *WORKERS, "beat", "flower", "api")
API_ADDRESS = "127.0.0.1"  # the local API is never exposed beyond this machine
ENV_FILE_MARKER = "# written by `couchwatch up` for the local stack; edit freely"


class MissingPrerequisite(RuntimeError):
    """A program the local stack needs is not installed; the message says what to install."""


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    state: str  # running | external | stopped | unhealthy; the security row: ok | problem | unknown
    pid: int | None
    port: int | None
    detail: str = ""


def ensure_env_file(root: Path) -> bool:
    """Write `.env` with generated local secrets when neither it nor the variables exist.

    Returns True when the file was written. Existing settings are never overwritten.
    """
    env_path = root / ".env"
    if env_path.exists() or os.environ.get("COUCHDB_PASSWORD"):
        return False
    lines = [
        ENV_FILE_MARKER,
        "COUCHDB_USER=admin",
        f"COUCHDB_PASSWORD={secrets.token_urlsafe(18)}",
        "FLOWER_USER=admin",
        f"FLOWER_PASSWORD={secrets.token_urlsafe(18)}",
        "# notifications go to the stack's local SMTP sink (.couchwatch/mail)",
        "COUCHWATCH_SMTP_HOST=127.0.0.1",
        "COUCHWATCH_SMTP_PORT=8025",
        "COUCHWATCH_SMTP_STARTTLS=false",
        "COUCHWATCH_SMTP_TO=analyst@localhost",
    ]
    env_path.write_text("\n".join(lines) + "\n")
    env_path.chmod(0o600)
    return True


def generated_flower_password(root: Path, settings: Settings) -> str | None:
    """The Flower password when it is the local secret `couchwatch up` generated, else None.

    Only then may it be shown (on a terminal): a password an operator chose, or one that comes
    from the environment or a hand-written `.env`, is never echoed.
    """
    env_path = root / ".env"
    if settings.flower_password is None or not env_path.is_file():
        return None
    lines = env_path.read_text().splitlines()
    if not lines or lines[0] != ENV_FILE_MARKER or "FLOWER_PASSWORD" in os.environ:
        return None
    password = settings.flower_password.get_secret_value()
    return password if f"FLOWER_PASSWORD={password}" in lines else None


def child_env(settings: Settings) -> dict[str, str]:
    """Environment for stack processes: ours, plus the settings they must agree on."""
    env = dict(os.environ)
    env.update(
        {
            "COUCHDB_URL": settings.couchdb_url,
            "REDIS_URL": settings.redis_url,
            "PYTHONUNBUFFERED": "1",
        }
    )
    creds = settings.couchdb_credentials()
    if creds:
        env["COUCHDB_USER"], env["COUCHDB_PASSWORD"] = creds
    return env


def flower_argv(settings: Settings, *, port: int | None = None) -> list[str]:
    """The command line that runs Flower (credentials travel in the environment, not argv)."""
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "couchwatch.celery",
        "flower",
        f"--address={settings.flower_address}",
        f"--port={port or settings.flower_port}",
        "--max_tasks=10000",  # tasks kept in memory (with their args): bounded
        "--persistent=False",  # never write task args to a state file on disk
        "--purge_offline_workers=60",
    ]


def flower_env(settings: Settings, base: dict[str, str]) -> dict[str, str]:
    """Environment for Flower with `FLOWER_BASIC_AUTH` from the settings."""
    if not settings.flower_user or settings.flower_password is None:
        raise MissingPrerequisite("set FLOWER_USER and FLOWER_PASSWORD: Flower never runs open")
    env = dict(base)
    password = settings.flower_password.get_secret_value()
    env["FLOWER_BASIC_AUTH"] = f"{settings.flower_user}:{password}"
    return env


def api_argv(settings: Settings) -> list[str]:
    """The command line that serves the HTTP API and the review page for the local stack."""
    return [
        sys.executable,
        "-m",
        "couchwatch.cli.main",
        "api",
        "--host",
        API_ADDRESS,
        "--port",
        str(settings.couchwatch_api_port),
    ]


def api_url(settings: Settings) -> str:
    """The review page of the local stack's API."""
    return f"http://{API_ADDRESS}:{settings.couchwatch_api_port}/"


def worker_argv(name: str, queues: str = "plan,train,score,notify") -> list[str]:
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "couchwatch.celery",
        "worker",
        "-n",
        f"{name}@%h",
        "-Q",
        queues,
        "--concurrency=1",
        "--loglevel=INFO",
    ]


def up(settings: Settings, root: Path, *, say: Callable[[str], None] = print) -> None:
    """Start every component that is not running yet (idempotent)."""
    state = root / settings.couchwatch_state_dir
    env = child_env(settings)
    up_couchdb(settings, root, state, env, say)
    _up_redis(settings, state, env, say)
    if mail.sink_wanted(settings):
        host = settings.couchwatch_smtp_host or "127.0.0.1"
        record = processes.load(state, "smtp")
        if (record is None or not processes.alive(record.pid)) and port_open(
            host, settings.couchwatch_smtp_port
        ):
            say(f"smtp: using the server already at {host}:{settings.couchwatch_smtp_port}")
        else:
            _ensure(
                state,
                "smtp",
                mail.sink_argv(settings, state),
                env,
                settings.couchwatch_smtp_port,
                root,
                say,
            )
        wait_for(
            lambda: port_open(host, settings.couchwatch_smtp_port),
            timeout_s=30,
            what="SMTP sink",
            log=str(state / "logs" / "smtp.log"),
        )
    for name in WORKERS:
        _ensure(state, name, worker_argv(name), env, None, root, say)
    beat_file = state / "celerybeat-schedule"
    beat_argv = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "couchwatch.celery",
        "beat",
        "-s",
        str(beat_file),
        "--loglevel=INFO",
    ]
    _ensure(state, "beat", beat_argv, env, None, root, say)
    flower = _ensure(
        state,
        "flower",
        flower_argv(settings),
        flower_env(settings, env),
        settings.flower_port,
        root,
        say,
    )
    if flower:
        wait_for(
            lambda: port_open(settings.flower_address, settings.flower_port),
            timeout_s=30,
            what="Flower",
            log=str(state / "logs" / "flower.log"),
        )
    if _ensure(state, "api", api_argv(settings), env, settings.couchwatch_api_port, root, say):
        wait_for(
            lambda: port_open(API_ADDRESS, settings.couchwatch_api_port),
            timeout_s=60,
            what="API",
            log=str(state / "logs" / "api.log"),
        )


def down(settings: Settings, root: Path, *, say: Callable[[str], None] = print) -> list[str]:
    """Stop every process `up` started, workers first; return their names."""
    state = root / settings.couchwatch_state_dir
    stopped = []
    for name in reversed(ORDER):
        record = processes.load(state, name)
        if record is None:
            continue
        processes.stop(state, record)
        say(f"stopped {name} (pid {record.pid})")
        stopped.append(name)
    return stopped


def status(settings: Settings, root: Path) -> list[ComponentStatus]:
    """Each component's state, pid, port and health."""
    state = root / settings.couchwatch_state_dir
    rows = []
    for name in ORDER:
        if name == "smtp" and not mail.sink_wanted(settings):
            continue
        record = processes.load(state, name)
        pid = record.pid if record and processes.alive(record.pid) else None
        port = record.port if record else None
        if name == "couchdb":
            port = urlsplit(settings.couchdb_base_url()).port or 5984
            healthy, detail = _couch_health(settings)
        elif name == "redis":
            port = urlsplit(settings.redis_url).port or 6379
            healthy, detail = _redis_health(settings)
        elif name == "smtp":
            healthy = port_open(settings.couchwatch_smtp_host or "", settings.couchwatch_smtp_port)
            detail = f"SMTP sink, mail in {mail.mail_dir(state)}"
        elif name == "flower":
            healthy = pid is not None and port_open(settings.flower_address, settings.flower_port)
            detail = f"http://{settings.flower_address}:{settings.flower_port}/"
        elif name == "api":
            healthy = pid is not None and port_open(API_ADDRESS, settings.couchwatch_api_port)
            detail = f"{api_url(settings)} (review page)"
        else:
            healthy, detail = pid is not None, (record.log if record else "")
        if pid is None and healthy:
            state_name = "external"
        elif pid is None:
            state_name = "stopped"
        else:
            state_name = "running" if healthy else "unhealthy"
        rows.append(ComponentStatus(name, state_name, pid, port, detail))
        if name == "couchdb":
            rows.append(_security_status(settings, reachable=healthy))
    return rows


def _security_status(settings: Settings, *, reachable: bool) -> ComponentStatus:
    """`_security` of every couchwatch database: `ok`, `problem` (open or lacking the fleet's
    grants, or missing) or `unknown` (CouchDB not reachable, or `_security` not readable)."""
    if not reachable:
        return ComponentStatus("security", "unknown", None, None, "CouchDB not reachable")
    try:
        client = CouchClient.from_settings(settings.model_copy(update={"couchdb_retries": 0}))
        try:
            states = check_databases(client, settings)
        finally:
            client.close()
    except CouchError as exc:
        return ComponentStatus("security", "unknown", None, None, str(exc).splitlines()[0])
    state = "ok" if all(s.ok for s in states) else "problem"
    return ComponentStatus("security", state, None, None, describe(states))


def _ensure(
    state: Path,
    name: str,
    argv: list[str],
    env: dict[str, str],
    port: int | None,
    root: Path,
    say: Callable[[str], None],
    *,
    umask: int = -1,
) -> bool:
    record = processes.load(state, name)
    if record and processes.alive(record.pid):
        say(f"{name} already running (pid {record.pid})")
        return False
    started = processes.start(state, name, argv, env=env, port=port, cwd=root, umask=umask)
    say(f"started {name} (pid {started.pid}, log {started.log})")
    return True


def up_couchdb(
    settings: Settings, root: Path, state: Path, env: dict[str, str], say: Callable[[str], None]
) -> None:
    """Start PouchDB Server (data and config private to this user) unless a CouchDB answers."""
    parts = urlsplit(settings.couchdb_base_url())
    host, port = parts.hostname or "127.0.0.1", parts.port or 5984
    record = processes.load(state, "couchdb")
    ours = record is not None and processes.alive(record.pid)
    if not ours and port_open(host, port):
        say(f"couchdb: using the server already at {settings.couchdb_base_url()}")
    elif not ours:
        creds = settings.couchdb_credentials()
        if creds is None:
            raise MissingPrerequisite("set COUCHDB_USER and COUCHDB_PASSWORD (see .env.example)")
        if shutil.which("node") is None:
            raise MissingPrerequisite(
                "node not found: install Node.js >= 18 (apt-get install nodejs npm)"
            )
        server = root / "node_modules" / ".bin" / "pouchdb-server"
        if not server.exists():
            raise MissingPrerequisite("PouchDB Server not installed: run `npm ci` in the project")
        data = state / "couchdb"
        data.mkdir(parents=True, exist_ok=True)
        data.chmod(0o700)  # its files hold every document and the users' password hashes
        _write_pouchdb_config(data / "config.json", creds)
        argv = [
            str(server),
            "-p",
            str(port),
            "-o",
            host,
            "-d",
            str(data),
            "-c",
            str(data / "config.json"),
            "-n",
        ]
        # umask 077: PouchDB Server rewrites config.json (the admin hash) through a temp file
        # and writes its databases (documents, `_users` password hashes): all private
        _ensure(state, "couchdb", argv, env, port, root, say, umask=0o077)
    wait_for(
        lambda: _couch_health(settings)[0],
        timeout_s=60,
        what="CouchDB",
        log=str(state / "logs" / "couchdb.log"),
    )


def _up_redis(
    settings: Settings, state: Path, env: dict[str, str], say: Callable[[str], None]
) -> None:
    parts = urlsplit(settings.redis_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 6379
    record = processes.load(state, "redis")
    ours = record is not None and processes.alive(record.pid)
    if not ours and port_open(host, port):
        say(f"redis: using the server already at {host}:{port}")
    elif not ours:
        binary = shutil.which("redis-server")
        if binary is None:
            raise MissingPrerequisite("redis-server not found: apt-get install redis-server")
        data = state / "redis"
        data.mkdir(parents=True, exist_ok=True)
        argv = [
            binary,
            "--port",
            str(port),
            "--bind",
            host,
            "--dir",
            str(data),
            "--save",
            "",
            "--appendonly",
            "no",
            "--maxmemory-policy",
            "noeviction",
        ]
        _ensure(state, "redis", argv, env, port, state.parent, say)
    wait_for(
        lambda: _redis_health(settings)[0],
        timeout_s=30,
        what="Redis",
        log=str(state / "logs" / "redis.log"),
    )


def _write_pouchdb_config(path: Path, creds: tuple[str, str]) -> None:
    """Write PouchDB Server's config with the admin password: mode 0600 from its first byte."""
    config = json.loads(path.read_text()) if path.exists() else {}
    user, password = creds
    config["admins"] = {user: password}  # PouchDB Server hashes it on start
    config.setdefault("log", {})["file"] = str(path.parent / "pouchdb.log")
    config.setdefault("httpd", {})["bind_address"] = "127.0.0.1"
    scratch = path.with_name(f".{path.name}.tmp")
    scratch.unlink(missing_ok=True)
    fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(json.dumps(config))
    os.replace(scratch, path)  # never readable by others, not even half-written


def _couch_health(settings: Settings) -> tuple[bool, str]:
    try:
        client = CouchClient.from_settings(settings.model_copy(update={"couchdb_retries": 0}))
        user = client.session_user()
        client.close()
    except CouchError as exc:
        return False, str(exc).splitlines()[0]
    except requests.RequestException as exc:  # pragma: no cover - mapped above normally
        return False, type(exc).__name__
    if user is None:
        return False, "credentials not accepted"
    return True, settings.couchdb_base_url()


def _redis_health(settings: Settings) -> tuple[bool, str]:
    try:
        ok = bool(redis.Redis.from_url(settings.redis_url, socket_timeout=1).ping())
    except redis.RedisError as exc:
        return False, type(exc).__name__
    parts = urlsplit(settings.redis_url)
    return ok, f"{parts.hostname}:{parts.port or 6379}"
