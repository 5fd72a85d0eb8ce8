"""The fast paths give exactly what the implementations they replaced gave.

``events_frame`` (one pass per categorical field), ``own_events`` (no copy when every event is
the entity's) and the CouchDB twin's ``_find`` index (the fleet's reads) are compared with the
former code, kept here as the reference, on generated scenarios: event frames, window feature
tables, login context, fitted models, scored windows and logins, and the fleet's scored rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any

import numpy as np
import pandas as pd
import pytest

from couchwatch.evaluate.run import score_entities
from workers.couch import memory
from workers.engine import features, model, population, summary
from workers.engine.context import login_context
from workers.engine.evaluation.split import split_train_test, train_cutoffs
from workers.engine.features import (
    CATEGORICAL_FIELDS,
    NAT_NS,
    NUMERIC_FIELDS,
    timestamps_ns,
    window_features,
)
from workers.engine.model import fit_entity_model
from workers.engine.scenarios import generate_scenario
from workers.settings import Settings

pytestmark = pytest.mark.unit

START = "2026-01-05"
CASES = {
    "sparse": dict(users=10, days=8, seed=1),
    "shifts": dict(users=10, days=8, seed=2),
    "services": dict(users=2, days=5, seed=1),
    "mixed": dict(users=10, days=8, seed=3),
}


def reference_events_frame(
    events: Iterable[Mapping[str, Any]], entity_field: str = "user_id"
) -> pd.DataFrame:
    """``events_frame`` as it was before its one-pass categorical columns."""
    rows = events if isinstance(events, list) else list(events)
    ts = timestamps_ns([r.get("timestamp") for r in rows])
    good = np.flatnonzero(ts != NAT_NS)
    ids = [v if type(v := rows[i].get("_id")) is str else features._event_id(v) for i in good]
    order = features._time_order(ts[good], ids)
    kept = [rows[i] for i in good[order]]
    columns: dict[str, Any] = {
        "event_id": features._objects([ids[i] for i in order]),
        "entity": features._objects([r.get(entity_field) for r in kept]),
        "timestamp": pd.DatetimeIndex(ts[good[order]].view("datetime64[ns]")).tz_localize("UTC"),
    }
    for name in CATEGORICAL_FIELDS:
        if name == "region":
            values = [features._region(r) for r in kept]
        else:
            values = [r.get(name) for r in kept]
        columns[name] = features._objects(
            [(v.strip() or None) if type(v) is str else features._clean_category(v) for v in values]
        )
    for name in NUMERIC_FIELDS:
        columns[name] = features._floats([r.get(name) for r in kept])
    frame = pd.DataFrame(columns)
    frame.attrs["dropped_events"] = len(rows) - len(good)
    return frame


def use_reference(m: pytest.MonkeyPatch) -> None:
    m.setattr(model, "events_frame", reference_events_frame)
    m.setattr(population, "events_frame", reference_events_frame)
    m.setattr(summary, "events_frame", reference_events_frame)
    m.setattr(model, "own_events", reference_own_events)
    m.setattr(summary, "own_events", reference_own_events)


def reference_own_events(frame: pd.DataFrame, entity: str) -> pd.DataFrame:
    """``own_events`` as it was: always a filtered copy."""
    own = frame["entity"].map(lambda e: e is None or str(e) == str(entity))
    kept = frame.loc[own.to_numpy(dtype=bool)].reset_index(drop=True)
    kept.attrs = dict(frame.attrs)
    return kept


def scan_candidates(db: Any, selector: Any) -> list[str]:
    """The twin's `_find` before its index: every document, in id order."""
    return [i for i in sorted(db.docs) if not i.startswith("_design/")]


@cache
def scenario(name: str) -> tuple[list[dict[str, Any]], str]:
    s = generate_scenario(name, start=START, **CASES[name])
    return s.events, s.entity_field


def engine_outputs(name: str) -> dict[str, dict[str, Any]]:
    """Per entity: frame, window table, login context, model facts, scored windows/logins."""
    events, field = scenario(name)
    train, test = split_train_test(events, field)
    pop = population.build_population(train, entity_field=field)
    out: dict[str, dict[str, Any]] = {}
    for entity in sorted({str(e[field]) for e in events}):
        mine = [e for e in train if str(e[field]) == entity]
        rest = [e for e in test if str(e[field]) == entity]
        frame = model.events_frame(mine + rest, field)
        fitted = fit_entity_model(entity, mine, entity_field=field, population=pop)
        result = fitted.score(mine[-30:] + rest, score_from=rest[0]["timestamp"] if rest else None)
        out[entity] = {
            "frame": frame,
            "windows": window_features(frame, "15min", ("/api/known",)),
            "logins": login_context(frame),
            "model": (fitted.features, fitted.fill, fitted.known_endpoints, fitted.home_zone),
            "scored_windows": result.windows,
            "scored_logins": result.logins,
            "scored_features": result.features,
        }
    return out


def assert_same(new: Any, old: Any, where: str) -> None:
    if isinstance(old, pd.DataFrame):
        pd.testing.assert_frame_equal(new, old, check_exact=True, obj=where)
        assert new.attrs == old.attrs, where
    else:
        assert new == old, where


@pytest.mark.parametrize("name", sorted(CASES))
def test_engine_outputs_are_those_of_the_former_code(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    new = engine_outputs(name)
    with monkeypatch.context() as m:
        use_reference(m)
        old = engine_outputs(name)
    assert new.keys() == old.keys() and len(new) > 1
    flagged = 0
    for entity, parts in old.items():
        for key, value in parts.items():
            assert_same(new[entity][key], value, f"{name} {entity} {key}")
        flagged += int(parts["scored_windows"]["flagged"].sum())
    assert sum(len(p["windows"]) for p in old.values()) > 50  # not a vacuous comparison
    if name != "services":
        assert flagged or any(p["scored_logins"]["flagged"].any() for p in old.values())


def test_event_frames_with_odd_values_are_those_of_the_former_code() -> None:
    events: list[dict[str, Any]] = [
        {
            "_id": "b",
            "user_id": "u",
            "timestamp": "2026-01-05T10:00:00Z",
            "region": None,
            "state": " CA ",
            "asn": 64512.0,
            "city": "  ",
            "country": float("nan"),
            "type": "login",
        },
        {
            "_id": "a",
            "user_id": 7,
            "timestamp": "2026-01-05T10:00:00Z",
            "region": "  x ",
            "endpoint": 3,
            "tz": "",
            "status_code": "500",
            "bytes_sent": None,
        },
        {"_id": None, "user_id": None, "timestamp": 1767607200, "ip_address": pd.NA},
        {"user_id": "u", "timestamp": "not a time"},
        {"_id": 5, "user_id": "u", "timestamp": "2026-01-05T09:59:59+01:00", "type": "LOGIN"},
    ]
    assert_same(features.events_frame(events), reference_events_frame(events), "frame")
    frame = features.events_frame(events)
    for entity in ("u", "7"):
        assert_same(summary.own_events(frame, entity), reference_own_events(frame, entity), entity)


@pytest.mark.parametrize("name", ["sparse", "mixed"])
def test_fleet_rows_on_the_indexed_twin_are_those_of_a_full_scan(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    events, field = scenario(name)
    settings = Settings(_env_file=None, couchwatch_entity_field=field)  # type: ignore[call-arg]
    cutoffs = train_cutoffs(events, field)
    new = score_entities(events, cutoffs, entity_field=field, settings=settings)
    with monkeypatch.context() as m:
        m.setattr(memory, "_candidates", scan_candidates)
        use_reference(m)
        old = score_entities(events, cutoffs, entity_field=field, settings=settings)
    assert len(old) > 100 and old["flagged"].any()
    assert_same(new, old, f"{name} fleet rows")
