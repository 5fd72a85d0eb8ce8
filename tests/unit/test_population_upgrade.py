"""A population document of an older engine format is rebuilt, never read as if current."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest

from couchwatch.evaluate.fleet import _ingest, memory_fleet
from scheduler.planning import ensure_population, plan_scoring
from tests.unit.engine._synth import history
from workers import detection
from workers.engine.population import POPULATION_FORMAT
from workers.settings import Settings

pytestmark = pytest.mark.unit


def test_an_old_format_population_is_rebuilt_on_the_next_pass() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    fleet = memory_fleet(settings)
    events = [e for k in range(3) for e in history(f"user{k}", days=10, seed=k)]
    last = pd.Timestamp(max(e["timestamp"] for e in events)).to_pydatetime()
    fleet.now.at = last + timedelta(seconds=1)  # type: ignore[attr-defined]
    _ingest(fleet, events, "test")
    plan_scoring(fleet, lambda task, args: "t")  # fills the entity registry
    db = settings.db_name("models")
    assert ensure_population(fleet, fleet.now())
    doc = fleet.couch.get(db, detection.POPULATION_ID)
    assert doc is not None and detection.population_from_doc(doc) is not None
    assert not ensure_population(fleet, fleet.now())  # fresh and current: kept
    doc["profile"]["format"] = POPULATION_FORMAT - 1  # written by an older engine
    fleet.couch.upsert(db, doc)
    assert detection.population_from_doc(fleet.couch.get(db, detection.POPULATION_ID)) is None
    assert ensure_population(fleet, fleet.now())  # rebuilt although fresh
    rebuilt = fleet.couch.get(db, detection.POPULATION_ID)
    assert rebuilt is not None and rebuilt["profile"]["format"] == POPULATION_FORMAT
