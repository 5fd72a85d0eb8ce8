"""`couchwatch ingest` end to end: a real CLI process against a real PouchDB Server."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import settings_env
from workers.couch.client import CouchClient
from workers.settings import Settings

pytestmark = pytest.mark.integration

GARBAGE = [
    "not json",
    '{"user_id": "u1"}',
    '{"timestamp": "2026-11-01T10:00:00Z"}',
    '{"user_id": "u1", "timestamp": "2026-11-01 10:00:00"}',
    '{"user_id": "u1", "timestamp": "2026-11-01T10:00:00Z", "bytes_sent": -1}',
    '{"user_id": true, "timestamp": 1700000000}',
    '{"user_id": "u1", "timestamp": NaN}',
    "[1, 2, 3]",
    '{"user_id": "u1", "timestamp": "3026-01-01T00:00:00Z"}',
    '{"user_id": "u1", "timestamp": "2026-11-01T10:00:00Z", "status_code": "x"}',
]


def _write_file(path: Path, good: int) -> tuple[int, int]:
    rng = random.Random(3)
    lines: list[bytes] = []
    for i in range(good):
        event = {
            "user_id": f"u{i % 7}",
            "timestamp": 1_762_000_000 + i * 60
            if i % 3
            else f"2026-11-01T10:{i % 60:02d}:00+02:00",
            "type": "request",
            "endpoint": f"/api/{i % 5}",
            "status_code": 200,
            "bytes_sent": rng.randint(1, 9999),
        }
        if i % 10 == 0:
            event["_id"] = f"producer-{i}"
        lines.append(json.dumps(event).encode())
    bad = [g.encode() for g in GARBAGE] + [b"\xff\xfe\x00binary", b"{" * 300_000]
    for n, junk in enumerate(bad * (good // 10 // len(bad) + 1)):
        if n >= good // 10:
            break
        lines.insert(rng.randrange(len(lines)), junk + (b" " * (n // len(bad))))
    path.write_bytes(b"\n".join(lines) + b"\n")
    return good, good // 10


def _ingest(settings: Settings, *args: str, stdin: bytes | None = None) -> str:
    env = {**os.environ, **settings_env(settings)}
    done = subprocess.run(
        [sys.executable, "-m", "couchwatch.cli.main", "ingest", "--quiet", *args],
        input=stdin,
        capture_output=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert b"Traceback" not in done.stderr
    return done.stdout.decode()


def test_ten_percent_broken_lines(tmp_path: Path, settings: Settings, couch: CouchClient) -> None:
    good, bad = _write_file(tmp_path / "events.jsonl", 400)
    out = _ingest(settings, str(tmp_path / "events.jsonl"))
    assert out.startswith(f"accepted {good}, duplicates 0, rejected {bad}"), out
    stored = [d for d in couch.iter_all_docs(settings.events_db)]
    assert len(stored) == good
    assert all(d["timestamp"].endswith("Z") for d in stored)
    assert couch.get(settings.events_db, "producer-10") is not None
    quarantined = list(couch.iter_all_docs(settings.db_name("quarantine")))
    assert quarantined and all(q["reason"] and q["line"] > 0 for q in quarantined)
    reasons = " ".join(q["reason"] for q in quarantined)
    for word in ("not valid JSON", "missing timestamp", "timezone", "negative", "UTF-8", "longer"):
        assert word in reasons

    again = _ingest(settings, str(tmp_path / "events.jsonl"))
    assert again.startswith(f"accepted 0, duplicates {good}, rejected {bad}"), again
    assert len(list(couch.iter_all_docs(settings.events_db))) == good
    assert len(list(couch.iter_all_docs(settings.db_name("quarantine")))) == len(quarantined)


def test_csv_and_stdin(tmp_path: Path, settings: Settings, couch: CouchClient) -> None:
    csv_file = tmp_path / "events.csv"
    csv_file.write_text(
        "service,timestamp,latency_ms,status_code\n"
        "billing,2026-11-01T10:00:00Z,12.5,200\n"
        "billing,1762000000,13,500\n"
        "billing,not-a-time,13,200\n"
    )
    service = settings.model_copy(update={"couchwatch_entity_field": "service"})
    assert _ingest(service, str(csv_file)).startswith("accepted 2, duplicates 0, rejected 1")
    docs = list(couch.iter_all_docs(settings.events_db))
    assert {d["latency_ms"] for d in docs} == {12.5, 13}
    line = b'{"service": "search", "timestamp": "2026-11-01T10:00:00Z", "latency_ms": 8}\n'
    assert _ingest(service, "-", stdin=line).startswith("accepted 1,")


def test_missing_file_is_one_clear_line(settings: Settings, tmp_path: Path) -> None:
    env = {**os.environ, **settings_env(settings)}
    done = subprocess.run(
        [sys.executable, "-m", "couchwatch.cli.main", "ingest", str(tmp_path / "nope.jsonl")],
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert done.stderr.decode().strip().count("\n") == 0
    assert b"Traceback" not in done.stderr
