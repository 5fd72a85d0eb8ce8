"""Waiting in integration tests: for a task's run record, or for any probe to answer."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from workers.couch.client import CouchClient
from workers.settings import Settings

TERMINAL = ("succeeded", "partial", "failed")
T = TypeVar("T")


def wait_run(
    couch: CouchClient, settings: Settings, task_id: str, timeout_s: float = 180
) -> dict[str, Any]:
    """The run record of `task_id` once it has a final outcome (AssertionError on timeout)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        doc = couch.get(settings.db_name("runs"), f"run-{task_id}")
        if doc and doc["outcome"] in TERMINAL:
            return doc
        time.sleep(0.3)
    raise AssertionError(f"run-{task_id} not finished within {timeout_s}s")


def eventually(probe: Callable[[], T | None], what: str, timeout_s: float = 180) -> T:
    """The first truthy value `probe` returns, polling every 0.5 s (AssertionError on timeout)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")
