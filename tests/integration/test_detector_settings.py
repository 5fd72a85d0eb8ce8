"""Detectors chosen in the settings are the ones real workers train with; bad ones stop a worker."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import settings_env
from tests.support.fleet import worker_fleet
from tests.support.services import ROOT
from tests.support.waiting import eventually, wait_run
from workers.couch.client import CouchClient
from workers.couch.schema import ensure_schema
from workers.engine.demo_data import generate_demo
from workers.settings import Settings
from workers.store.models import head_id

pytestmark = pytest.mark.integration


def test_workers_train_with_the_detectors_the_settings_name(
    settings: Settings, couch: CouchClient, tmp_path: Path
) -> None:
    ensure_schema(couch, settings)
    start = (datetime.now(UTC) - timedelta(days=10)).replace(hour=0, minute=0, second=0)
    events = generate_demo(users=2, days=8, seed=5, start=start).events
    assert not couch.bulk_docs(settings.events_db, events).failed
    env = {
        **settings_env(settings),
        "COUCHWATCH_DETECTORS": "robust_zscore,isolation_forest,novelty",
    }
    with worker_fleet(settings, env, tmp_path / "logs", names=("w1",)) as fleet:
        app = fleet.app()
        plan = app.send_task("couchwatch.plan_scoring", kwargs={"force": True})
        assert wait_run(couch, settings, plan.id)["outcome"] == "succeeded"
        app.send_task("couchwatch.plan_training", kwargs={"force": True})
        users = sorted({e["user_id"] for e in events})

        def heads() -> list[str] | None:
            found = [u for u in users if couch.get(settings.db_name("models"), head_id(u))]
            return found if found == users else None

        eventually(heads, "a model for every user")
    versions = [
        d for d in couch.iter_all_docs(settings.db_name("models")) if d.get("type") == "model"
    ]
    assert versions, "no model version stored"
    for doc in versions:
        assert doc["detectors"] == ["robust_zscore", "rates", "isolation_forest"], doc
        assert doc["novelty"] is True


def test_a_worker_with_an_unknown_detector_refuses_to_start(settings: Settings) -> None:
    env = {**settings_env(settings), "COUCHWATCH_DETECTORS": "robust_zscore,telepathy"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "couchwatch.celery",
            "worker",
            "-n",
            "bad@testhost",
            "--concurrency=1",
            "--without-mingle",
            "--without-gossip",
        ],
        env={**__import__("os").environ, **env},
        cwd=ROOT,
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode != 0
    output = (proc.stdout + proc.stderr).decode()
    assert "invalid detection settings" in output and "telepathy" in output
