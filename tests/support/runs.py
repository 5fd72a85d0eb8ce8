"""Waiting for a task's run record (the outcome every task writes to `<prefix>runs`)."""

from __future__ import annotations

import time
from typing import Any

from workers.couch.client import CouchClient
from workers.settings import Settings

TERMINAL = ("succeeded", "partial", "failed")


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
