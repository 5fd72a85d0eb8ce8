"""`couchwatch up | status | demo | down` start and stop a whole local stack without strays."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from couchwatch.stack.mail import received
from couchwatch.stack.processes import free_port
from tests.support.services import ROOT

pytestmark = pytest.mark.integration


def _cli(env: dict[str, str], *args: str, timeout: int = 180) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "couchwatch.cli.main", *args],
        capture_output=True,
        env=env,
        cwd=ROOT,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    return done.stdout.decode()


def _processes_under(state: Path) -> list[str]:
    ps = subprocess.run(["ps", "-eo", "stat=,args="], capture_output=True, text=True, check=True)
    return [
        line
        for line in ps.stdout.splitlines()
        if str(state) in line and not line.lstrip().startswith("Z")
    ]


def test_up_status_demo_down(tmp_path: Path) -> None:
    state = tmp_path / "state"
    env = {
        **os.environ,
        "COUCHDB_URL": f"http://127.0.0.1:{free_port()}",
        "COUCHDB_USER": "stackadmin",
        "COUCHDB_PASSWORD": "stack-pass-51",
        "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        "FLOWER_USER": "flower",
        "FLOWER_PASSWORD": "flower-pass-93",
        "FLOWER_PORT": str(free_port()),
        "COUCHWATCH_API_PORT": str(free_port()),
        "COUCHWATCH_STATE_DIR": str(state),
        "COUCHWATCH_EVENTS_DB": "stack_events",
        "COUCHWATCH_SMTP_HOST": "127.0.0.1",
        "COUCHWATCH_SMTP_PORT": str(free_port()),
        "COUCHWATCH_SMTP_STARTTLS": "false",
        "COUCHWATCH_SMTP_TO": "analyst@localhost",
    }
    try:
        out = _cli(env, "up")
        assert "started couchdb" in out and "started flower" in out
        assert "stack-pass-51" not in out and "flower-pass-93" not in out

        again = _cli(env, "up")
        assert "already running" in again and "started" not in again

        rows = {line.split()[0]: line.split()[1] for line in _cli(env, "status").splitlines()[1:]}
        assert rows == {
            **dict.fromkeys(
                ("couchdb", "redis", "smtp", "worker1", "worker2", "beat", "flower", "api"),
                "running",
            ),
            "security": "ok",  # `_security` on every couchwatch database
        }
        flower = f"http://127.0.0.1:{env['FLOWER_PORT']}/api/workers"
        assert requests.get(flower, timeout=10).status_code == 401
        api = f"http://127.0.0.1:{env['COUCHWATCH_API_PORT']}"
        assert "couchwatch" in requests.get(f"{api}/", timeout=10).text  # the review page
        assert requests.get(f"{api}/v1/anomalies", timeout=10).status_code == 401

        demo = _cli(env, "demo", "--users", "6", "--days", "10")
        assert "accepted" in demo and "rejected 6" in demo
        assert "notifications:" in demo
        assert f"review page: {api}/" in demo and "cwk_" not in demo  # a key only on a terminal
        mails = received(state)
        assert mails and all(m.to == "analyst@localhost" for m in mails), demo
        # one message per incident (or a digest of several)
        assert all("incident" in m.subject or "digest" in m.subject for m in mails), mails
        assert "accepted 0," in _cli(env, "demo", "--users", "6", "--days", "10")
        # what issue 13 did as an anonymous local user: plant an admin API key, read the keys
        couch = env["COUCHDB_URL"]
        planted = requests.put(
            f"{couch}/couchwatch_apikeys/apikey-evil",
            timeout=10,
            json={"type": "apikey", "scopes": ["admin"]},
        )
        assert planted.status_code == 401
        assert (
            requests.post(
                f"{couch}/couchwatch_apikeys/_find", timeout=10, json={"selector": {}, "limit": 5}
            ).status_code
            == 401
        )
        for name in ("worker1", "worker2", "couchdb", "flower"):
            assert "stack-pass-51" not in (state / "logs" / f"{name}.log").read_text()
    finally:
        down = _cli(env, "down")
    assert "stopped worker1" in down and "stopped couchdb" in down and "stopped smtp" in down
    assert "stopped api" in down
    assert _processes_under(state) == []
    rows = _cli(env, "status").splitlines()[1:]
    assert all(line.split()[1] in ("stopped", "unknown") for line in rows), rows
