"""Model versions on the in-memory CouchDB twin: keep the last K, idempotent per request,
rollback, the `models` CLI, and stored models that cannot be loaded (other library version,
planted pickle). Was tests/integration/test_model_store.py on PouchDB Server; the attachments
the versions are stored as are held to both servers by tests/contract/couch.py."""

from __future__ import annotations

import os
import pickle
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from couchwatch.cli import models_cmd
from couchwatch.cli.main import cli
from scheduler.planning import due_for_training
from workers import detection, scoring
from workers.couch.client import CouchClient
from workers.couch.memory import MemoryCouchClient, memory_redis
from workers.couch.schema import ensure_schema
from workers.engine import persistence
from workers.engine.demo_data import generate_demo
from workers.fleet import Fleet
from workers.settings import Settings
from workers.store.models import ModelCache, ModelStore
from workers.store.registry import registry_id
from workers.store.runs import Run

pytestmark = pytest.mark.unit
USER = "user000"


@pytest.fixture
def settings() -> Settings:
    return Settings(_env_file=None, couchwatch_db_prefix="cw_")  # type: ignore[call-arg]


@pytest.fixture
def couch(settings: Settings) -> CouchClient:
    return MemoryCouchClient()


@pytest.fixture
def trained(settings: Settings, couch: CouchClient) -> tuple[list[dict], bytes]:  # type: ignore[type-arg]
    ensure_schema(couch, settings)
    start = datetime.now(UTC) - timedelta(days=11)
    events = [
        e
        for e in generate_demo(users=2, days=10, seed=5, start=start).events
        if e["user_id"] == USER
    ]
    couch.bulk_docs(settings.events_db, events)
    model = detection.fit(USER, events, entity_field="user_id", population=None, reviewed=[])
    return events, detection.dump_model(model)


@pytest.fixture
def cli_env(settings: Settings, couch: CouchClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """The `couchwatch models` commands on the twin."""
    monkeypatch.setattr(models_cmd, "settings_or_fail", lambda: settings)
    monkeypatch.setattr(models_cmd, "couch_or_fail", lambda _settings: couch)


def test_keep_last_versions_idempotent_and_rollback(
    settings: Settings,
    couch: CouchClient,
    trained: tuple[list[dict], bytes],
    cli_env: None,  # type: ignore[type-arg]
) -> None:
    _, payload = trained
    store = ModelStore(couch, settings.db_name("models"), keep=3)
    for n in range(1, 5):
        assert store.save(USER, f"req-{n}", payload, {"features": ["x"]}) == (n, True)
    assert store.save(USER, "req-4", payload, {"features": ["x"]}) == (4, False)
    head = store.head(USER)
    assert head is not None and [v["version"] for v in head["versions"]] == [2, 3, 4]
    model_docs = [
        d for d in couch.iter_all_docs(settings.db_name("models")) if d.get("type") == "model"
    ]
    assert sorted(d["version"] for d in model_docs) == [2, 3, 4]  # version 1 deleted
    loaded = store.load(USER)
    assert loaded is not None and loaded.payload == payload

    runner = CliRunner()
    listed = runner.invoke(cli, ["models", "list"])
    assert listed.exit_code == 0 and USER in listed.output and "2,3,4" in listed.output
    shown = runner.invoke(cli, ["models", "show", USER])
    assert shown.exit_code == 0 and '"version": 4' in shown.output
    back = runner.invoke(cli, ["models", "rollback", USER])
    assert back.exit_code == 0 and "active version is now 3" in back.output
    assert store.head(USER)["active_version"] == 3  # type: ignore[index]
    bad = runner.invoke(cli, ["models", "rollback", USER, "--to", "1"])
    assert bad.exit_code == 1 and "keeps versions [2, 3, 4]" in bad.output
    missing = runner.invoke(cli, ["models", "show", "nobody"])
    assert missing.exit_code == 1 and missing.output.count("\n") == 1


def _score_with(settings: Settings, couch: CouchClient, events: list[dict], payload: bytes) -> Run:  # type: ignore[type-arg]
    fleet = Fleet(
        settings=settings,
        couch=couch,
        redis=memory_redis(),
        models=ModelStore(couch, settings.db_name("models"), keep=3),
        cache=ModelCache(4),
    )
    population = detection.make_population(events, entity_field="user_id")
    couch.upsert(settings.db_name("models"), detection.population_to_doc(population))
    fleet.models.save(USER, "req-bad", payload, {})
    run = Run(task="test", task_id="t1", entities=[USER])
    scoring.score_entities(fleet, [(USER, None, None)], request_id="t1", run=run)
    return run


def test_model_from_another_library_version_is_retrained(
    settings: Settings,
    couch: CouchClient,
    trained: tuple[list[dict], bytes],  # type: ignore[type-arg]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    events, _ = trained
    model = detection.fit(USER, events, entity_field="user_id", population=None, reviewed=[])
    monkeypatch.setattr(
        persistence, "library_versions", lambda: {"numpy": "0.1", "scikit-learn": "0.1"}
    )
    old_payload = persistence.dump_model(model)
    monkeypatch.undo()
    run = _score_with(settings, couch, events, old_payload)
    assert run.details["retrain_requested"] == [USER]
    assert not run.entity_errors  # scored with a cold-start model meanwhile
    entry = couch.get(settings.db_name("models"), registry_id(USER))
    assert entry is not None and entry["needs_retrain"] and "retrain" in entry["retrain_reason"]
    fresh_otherwise = {**entry, "model_version": 1, "last_trained_at": "9999"}
    now = datetime.now(UTC)
    assert due_for_training(fresh_otherwise, now=now, retrain_after_s=3600, min_new_events=10**9)


class _Planted:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {os.environ.get('COUCHWATCH_PWNED', '/tmp/cw-pwned')}",))


def test_planted_pickle_is_refused_and_reported(
    settings: Settings,
    couch: CouchClient,
    trained: tuple[list[dict], bytes],  # type: ignore[type-arg]
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    events, _ = trained
    marker = tmp_path / "pwned"
    monkeypatch.setenv("COUCHWATCH_PWNED", str(marker))
    run = _score_with(settings, couch, events, pickle.dumps(_Planted()))
    assert run.details["unsafe_models"] == [USER]
    assert not marker.exists()
    entry = couch.get(settings.db_name("models"), registry_id(USER))
    assert entry is not None and entry["needs_retrain"]
