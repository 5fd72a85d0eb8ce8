"""Real `celery worker` processes for integration tests (never eager mode)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from celery import Celery

from tests.support.services import ROOT
from workers.celery_app import celery_config
from workers.settings import Settings


@dataclass
class WorkerFleet:
    settings: Settings
    env: dict[str, str]
    logs: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, queues: str = "plan,train,score,notify") -> None:
        log = (self.logs / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "couchwatch.celery",
                "worker",
                "-n",
                f"{name}@testhost",
                "-Q",
                queues,
                "--concurrency=1",
                "--loglevel=INFO",
                "--without-mingle",
                "--without-gossip",
            ],
            env=self.env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Signal the whole worker (main process and its pool children)."""
        proc = self.processes[name]
        os.killpg(proc.pid, sig)
        proc.wait(timeout=60)

    def stop_all(self) -> None:
        for proc in self.processes.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.processes.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)

    def app(self) -> Celery:
        app = Celery("test-client")
        app.conf.update(celery_config(self.settings))
        return app

    def wait_ready(self, names: list[str], timeout_s: float = 60) -> None:
        app = self.app()
        wanted = {f"{n}@testhost" for n in names}
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            replies = app.control.ping(timeout=1.0) or []
            seen = {name for reply in replies for name in reply}
            if wanted <= seen:
                return
        raise RuntimeError(f"workers {sorted(wanted)} not ready (logs in {self.logs})")


POISON_FIT_DIR = Path(__file__).parent / "poison_fit"


def poison_fit_env(entity: str) -> dict[str, str]:
    """Environment for worker processes in which fitting ``entity``'s model raises
    (``poison_fit/sitecustomize.py``); every other entity trains as usual."""
    path = os.environ.get("PYTHONPATH")
    return {
        "PYTHONPATH": os.pathsep.join(p for p in (str(POISON_FIT_DIR), path) if p),
        "COUCHWATCH_TEST_POISON_ENTITY": entity,
    }


@contextmanager
def worker_fleet(
    settings: Settings, env: dict[str, str], logs: Path, names: tuple[str, ...] = ("w1", "w2")
) -> Iterator[WorkerFleet]:
    logs.mkdir(parents=True, exist_ok=True)
    fleet = WorkerFleet(settings, {**os.environ, **env}, logs)
    try:
        for name in names:
            fleet.start(name)
        fleet.wait_ready(list(names))
        yield fleet
    finally:
        fleet.stop_all()
