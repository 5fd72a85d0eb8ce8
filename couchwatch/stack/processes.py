"""Background processes of the local stack: start detached, record pid and port, stop cleanly.

Each process runs in its own session (process group) so `stop` reaches its children too (Celery's
prefork pool), and its state lives in `<state_dir>/run/<name>.json`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

STOP_GRACE_S = 20.0


@dataclass(frozen=True)
class ProcessRecord:
    """What `up` started: enough for `status` and `down`."""

    name: str
    pid: int
    port: int | None
    command: str
    log: str


def run_dir(state_dir: Path) -> Path:
    path = state_dir / "run"
    path.mkdir(parents=True, exist_ok=True)
    return path


def start(
    state_dir: Path,
    name: str,
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    port: int | None = None,
    cwd: Path | None = None,
    umask: int = -1,
) -> ProcessRecord:
    """Start `argv` detached, logging to `<state_dir>/logs/<name>.log`; record and return it.

    `umask` (e.g. 0o077) applies to every file the process creates (-1: inherit ours)."""
    logs = state_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{name}.log"
    with open(log_path, "ab") as log_file:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
            umask=umask,
        )
    record = ProcessRecord(name, proc.pid, port, os.path.basename(argv[0]), str(log_path))
    (run_dir(state_dir) / f"{name}.json").write_text(json.dumps(asdict(record)))
    return record


def load(state_dir: Path, name: str) -> ProcessRecord | None:
    """Return the record of a process `up` started, or None."""
    path = run_dir(state_dir) / f"{name}.json"
    if not path.exists():
        return None
    try:
        return ProcessRecord(**json.loads(path.read_text()))
    except (ValueError, TypeError):
        path.unlink()
        return None


def records(state_dir: Path) -> list[ProcessRecord]:
    found = [load(state_dir, p.stem) for p in sorted(run_dir(state_dir).glob("*.json"))]
    return [r for r in found if r is not None]


def alive(pid: int) -> bool:
    """True when `pid` runs (zombies count as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return True


def stop(state_dir: Path, record: ProcessRecord, *, grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM the process group, wait up to `grace_s`, then SIGKILL it; forget the record."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(record.pid, sig)
        deadline = time.monotonic() + (grace_s if sig == signal.SIGTERM else 5.0)
        while time.monotonic() < deadline and _group_alive(record.pid):
            _reap(record.pid)
            time.sleep(0.1)
        if not _group_alive(record.pid):
            break
    _reap(record.pid)
    (run_dir(state_dir) / f"{record.name}.json").unlink(missing_ok=True)


def _group_alive(pgid: int) -> bool:
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.getpgid(int(entry)) == pgid and alive(int(entry)):
                return True
        except (ProcessLookupError, PermissionError):
            continue
    return False


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def free_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: object, *, timeout_s: float, what: str, log: str | None = None) -> None:
    """Poll `check()` until it returns true; raise RuntimeError naming `what` and its log."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.2)
    where = f" (see {log})" if log else ""
    raise RuntimeError(f"{what} did not become ready within {timeout_s:.0f}s{where}")
