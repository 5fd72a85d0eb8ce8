"""Real services for integration tests: PouchDB Server and redis-server on free ports.

Each starts in a temp dir, never touches the shared Redis on 6379, and is stopped afterwards.
A missing binary fails the test run (in CI and locally): integration tests never skip.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
import requests

from couchwatch.stack.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
POUCHDB_BIN = ROOT / "node_modules" / ".bin" / "pouchdb-server"
ADMIN_USER = "cwadmin"
ADMIN_PASSWORD = "test-secret-7f3a"


class ServiceMissing(RuntimeError):
    pass


@dataclass
class CouchServer:
    url: str
    user: str
    password: str
    process: subprocess.Popen[bytes]
    data_dir: Path
    port: int

    def stop(self) -> None:
        terminate(self.process)

    def start_again(self) -> None:
        """Restart on the same port and data dir (for outage tests)."""
        self.process = _spawn_pouchdb(self.port, self.data_dir)
        _wait_http(self.url, (self.user, self.password))


@dataclass
class RedisServer:
    url: str
    port: int
    process: subprocess.Popen[bytes]
    data_dir: Path
    options: tuple[str, ...] = ()

    def stop(self) -> None:
        terminate(self.process)

    def start_again(self) -> None:
        """Restart on the same port, data dir and options (for outage tests)."""
        self.process = _spawn_redis(self.port, self.data_dir, self.options)
        _wait_redis(self.url)


def _spawn_pouchdb(port: int, data_dir: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            str(POUCHDB_BIN),
            "-p",
            str(port),
            "-o",
            "127.0.0.1",
            "-d",
            str(data_dir),
            "-c",
            str(data_dir / "config.json"),
            "-n",
        ],
        stdout=(data_dir / "stdout.log").open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


@contextmanager
def couch_server(tmp: Path) -> Iterator[CouchServer]:
    if not POUCHDB_BIN.exists():
        raise ServiceMissing(f"{POUCHDB_BIN} missing: run `npm ci` (make test does)")
    if shutil.which("node") is None:
        raise ServiceMissing("node not found: install Node.js >= 18")
    tmp.mkdir(parents=True, exist_ok=True)
    config = {
        "admins": {ADMIN_USER: ADMIN_PASSWORD},
        "log": {"file": str(tmp / "pouchdb.log"), "level": "error"},
    }
    (tmp / "config.json").write_text(json.dumps(config))
    port = free_port()
    server = CouchServer(
        f"http://127.0.0.1:{port}",
        ADMIN_USER,
        ADMIN_PASSWORD,
        _spawn_pouchdb(port, tmp),
        tmp,
        port,
    )
    try:
        _wait_http(server.url, (ADMIN_USER, ADMIN_PASSWORD))
        yield server
    finally:
        server.stop()


def _spawn_redis(
    port: int, data_dir: Path, options: tuple[str, ...] = ()
) -> subprocess.Popen[bytes]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise ServiceMissing("redis-server not found: apt-get install redis-server")
    return subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(data_dir),
            "--save",
            "",
            "--appendonly",
            "no",
            "--maxmemory-policy",
            "noeviction",
            *options,
        ],
        stdout=(data_dir / "redis.log").open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


@contextmanager
def redis_server(
    tmp: Path, *, appendonly: bool = False, password: str | None = None
) -> Iterator[RedisServer]:
    """A redis-server on a free port. `appendonly` persists every write (`appendfsync always`),
    so queued messages survive a restart as they do in production; `password` requires AUTH."""
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    assert port != 6379
    options: tuple[str, ...] = ()
    if appendonly:
        options += ("--appendonly", "yes", "--appendfsync", "always")
    if password:
        options += ("--requirepass", password)
    auth = f":{password}@" if password else ""
    server = RedisServer(
        f"redis://{auth}127.0.0.1:{port}/0", port, _spawn_redis(port, tmp, options), tmp, options
    )
    try:
        _wait_redis(server.url)
        yield server
    finally:
        server.stop()


def _wait_http(url: str, auth: tuple[str, str], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if requests.get(url + "/", auth=auth, timeout=2).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise ServiceMissing(f"PouchDB Server at {url} did not start within {timeout_s}s")


def _wait_redis(url: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if redis.Redis.from_url(url, socket_timeout=1).ping():
                return
        except redis.RedisError:
            pass
        time.sleep(0.1)
    raise ServiceMissing(f"redis-server at {url} did not start within {timeout_s}s")


def terminate(process: subprocess.Popen[Any], grace_s: float = 10) -> None:
    """SIGTERM the process group of `process`; SIGKILL it if it is still there after `grace_s`."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)
