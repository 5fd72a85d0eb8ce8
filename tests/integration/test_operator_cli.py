"""Operator commands against a real PouchDB Server: review, anomalies, runs, bad input."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from couchwatch.cli.main import cli
from tests.conftest import settings_env
from workers.couch.client import CouchClient
from workers.couch.schema import ensure_schema
from workers.settings import Settings, get_settings
from workers.store.anomalies import merge_anomaly
from workers.store.registry import registry_id
from workers.store.runs import Run, save_run

pytestmark = pytest.mark.integration


@pytest.fixture
def runner(
    settings: Settings, couch: CouchClient, monkeypatch: pytest.MonkeyPatch
) -> Iterator[CliRunner]:
    ensure_schema(couch, settings)
    for key, value in settings_env(settings).items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def _anomaly(entity: str, start: str, score: float, severity: str) -> dict:  # type: ignore[type-arg]
    return {
        "_id": f"anomaly:{entity}:{start}",
        "type": "anomaly",
        "entity": entity,
        "entity_field": "user_id",
        "detector": "combined",
        "window_start": start,
        "window_end": start,
        "event_ids": ["e1"],
        "score": score,
        "threshold": 0.9,
        "severity": severity,
        "confidence": 1.0,
        "reasons": [{"text": f"{entity} odd"}],
        "review": {"status": "open"},
    }


def test_review_anomalies_and_runs(
    runner: CliRunner, settings: Settings, couch: CouchClient
) -> None:
    db = settings.db_name("anomalies")
    couch.bulk_docs(
        db,
        [
            _anomaly("alice", "2026-11-01T10:00:00.000Z", 0.99, "high"),
            _anomaly("alice", "2026-11-02T10:00:00.000Z", 0.95, "low"),
            _anomaly("bob", "2026-11-01T11:00:00.000Z", 0.97, "medium"),
        ],
    )
    out = runner.invoke(cli, ["anomalies", "--entity", "alice"]).output
    assert "alice odd" in out and "bob" not in out
    out = runner.invoke(cli, ["anomalies", "--severity", "medium", "--json"]).output
    assert '"bob"' in out and '"alice"' not in out

    target = "anomaly:alice:2026-11-01T10:00:00.000Z"
    done = runner.invoke(cli, ["review", target, "dismiss", "--note", "new phone"])
    assert done.exit_code == 0 and "dismissed" in done.output
    stored = couch.get(db, target)
    assert stored is not None and stored["review"]["status"] == "dismissed"
    assert stored["review"]["note"] == "new phone"
    # a rescore of the same window keeps the human review
    rescored = merge_anomaly(stored, {**_anomaly("alice", "2026-11-01T10:00:00.000Z", 0.5, "low")})
    assert rescored["review"]["status"] == "dismissed"

    missing = runner.invoke(cli, ["review", "anomaly:nope", "confirm"])
    assert missing.exit_code == 1 and missing.output.strip().count("\n") == 0

    run = Run(task="couchwatch.score_entities", task_id="abc", entities=["alice"])
    run.finish()
    save_run(couch, settings.db_name("runs"), run, attempt=1, worker="w9@host")
    out = runner.invoke(cli, ["runs", "--last", "5"]).output
    assert "score_entities" in out and "succeeded" in out and "w9@host" in out


def test_unknown_entities_are_one_clear_line(
    runner: CliRunner, settings: Settings, couch: CouchClient
) -> None:
    couch.put(
        settings.db_name("models"),
        {"_id": registry_id("alice"), "type": "entity", "entity": "alice"},
    )
    for command in (["train", "--entity", "ghost"], ["score", "--entity", "$gt"]):
        result = runner.invoke(cli, command)
        assert result.exit_code == 1, result.output
        assert "unknown entity ids" in result.output
        assert result.output.strip().count("\n") == 0
    assert runner.invoke(cli, ["train"]).exit_code == 1
