"""Model persistence: identical scores after a round trip, nothing from the payload executes."""

from __future__ import annotations

import io
import json
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from workers.engine import persistence
from workers.engine.config import EngineConfig
from workers.engine.errors import IncompatibleModelError, UnsafeModelError
from workers.engine.model import EntityModel, fit_entity_model
from workers.engine.persistence import dump_model, load_model

from ._synth import history

pytestmark = pytest.mark.unit

ALL = EngineConfig(detectors=("robust_zscore", "isolation_forest", "one_class_svm", "novelty"))


@pytest.fixture(scope="module")
def events() -> list[dict]:
    return history("bob", days=30, seed=4)


@pytest.fixture(scope="module")
def model(events: list[dict]) -> EntityModel:
    return fit_entity_model("bob", events[:-200], config=ALL)


class _Payload:
    """Unpickling this runs os.system: a real code-execution payload."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def test_round_trip_gives_identical_scores(model: EntityModel, events: list[dict]) -> None:
    before = model.score(events[-200:])
    loaded = load_model(dump_model(model))
    after = loaded.score(events[-200:])
    assert loaded.features == model.features and loaded.thresholds == model.thresholds
    for name in ("robust_zscore", "isolation_forest", "one_class_svm"):
        np.testing.assert_array_equal(
            before.windows[f"score_{name}"], after.windows[f"score_{name}"]
        )
    np.testing.assert_array_equal(before.windows["score"], after.windows["score"])
    np.testing.assert_array_equal(before.logins["score"], after.logins["score"])
    assert dump_model(loaded) == dump_model(model)


def test_default_model_round_trips_every_profile(events: list[dict]) -> None:
    default = fit_entity_model("bob", events[:-200])
    assert default.time is not None and default.rates is not None
    assert default.novelty is not None and default.zscore is not None
    loaded = load_model(dump_model(default))
    before, after = default.score(events[-200:]), loaded.score(events[-200:])
    for name in ("robust_zscore", "rates", "time_of_day", "session"):
        np.testing.assert_array_equal(
            before.windows[f"score_{name}"], after.windows[f"score_{name}"]
        )
    np.testing.assert_array_equal(before.logins["score"], after.logins["score"])
    np.testing.assert_array_equal(loaded.time.counts, default.time.counts)  # type: ignore[union-attr]
    assert loaded.novelty == default.novelty and loaded.rates == default.rates
    assert dump_model(loaded) == dump_model(default)


def test_model_size_stays_small(model: EntityModel) -> None:
    assert len(dump_model(model)) <= 32 * 1024  # all four detectors, 50-tree forest
    default = fit_entity_model("bob", history("bob", days=30, seed=4))
    assert len(dump_model(default)) <= 8 * 1024


def test_plain_pickle_payload_is_refused_without_running(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Payload(marker))
    with pytest.raises(UnsafeModelError):
        load_model(payload)
    assert not marker.exists()
    with pytest.raises(UnsafeModelError):
        load_model(b"not a model at all")


def test_pickled_object_array_inside_the_envelope_is_refused(
    model: EntityModel, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned-npz"
    evil = np.empty(1, dtype=object)
    evil[0] = _Payload(marker)
    npz = io.BytesIO()
    np.savez(npz, a0=evil, allow_pickle=True)  # np.save pickles object arrays
    good = zipfile.ZipFile(io.BytesIO(dump_model(model)))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr(persistence.ENVELOPE, good.read(persistence.ENVELOPE))
        zf.writestr(persistence.ARRAYS, npz.getvalue())
    with pytest.raises(UnsafeModelError):
        load_model(out.getvalue())
    assert not marker.exists()


def test_extra_member_in_the_envelope_is_refused(model: EntityModel) -> None:
    data = io.BytesIO(dump_model(model))
    with zipfile.ZipFile(data, "a") as zf:
        zf.writestr("model.pkl", b"\x80\x04.")
    with pytest.raises(UnsafeModelError):
        load_model(data.getvalue())


def _with_envelope(data: bytes, **changes: object) -> bytes:
    src = zipfile.ZipFile(io.BytesIO(data))
    envelope = json.loads(src.read(persistence.ENVELOPE))
    envelope.update(changes)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr(persistence.ENVELOPE, json.dumps(envelope))
        zf.writestr(persistence.ARRAYS, src.read(persistence.ARRAYS))
    return out.getvalue()


def test_other_library_or_format_version_asks_for_retraining(model: EntityModel) -> None:
    data = dump_model(model)
    old_sklearn = {**persistence.library_versions(), "scikit-learn": "1.4.2"}
    with pytest.raises(IncompatibleModelError, match="scikit-learn"):
        load_model(_with_envelope(data, libraries=old_sklearn))
    with pytest.raises(IncompatibleModelError):
        load_model(_with_envelope(data, format_version=99))


def test_unknown_detector_name_in_the_state_is_refused(model: EntityModel) -> None:
    src = zipfile.ZipFile(io.BytesIO(dump_model(model)))
    envelope = json.loads(src.read(persistence.ENVELOPE))
    state = envelope["state"]["detectors"]
    state["os.system"] = state.pop("isolation_forest")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr(persistence.ENVELOPE, json.dumps(envelope))
        zf.writestr(persistence.ARRAYS, src.read(persistence.ARRAYS))
    with pytest.raises(UnsafeModelError):
        load_model(out.getvalue())


@pytest.mark.parametrize("cut_day", [0, 9, 12, 40])  # before, inside, after the history
def test_summary_parts_load_as_the_combined_summary(cut_day: int) -> None:
    """Summaries of consecutive day ranges load into one: the same bytes and the same model as
    `combined` of each one loaded (an empty part included)."""
    from workers.engine.model import fit_summary
    from workers.engine.summary import combined, summarize_events

    events = history("alice", days=21, seed=3)
    whole = summarize_events("alice", events, entity_field="user_id", window="15min")
    first = int(min(whole.days))
    split = first + cut_day if cut_day < 40 else first - 1
    parts = [
        persistence.dump_summary(p, entity="alice", entity_field="user_id")
        for p in (whole.before(split), whole.since(split))
    ]
    joined = persistence.load_summary(*parts)
    one_by_one = combined(*(persistence.load_summary(p) for p in parts))
    dump = persistence.dump_summary
    assert dump(joined, entity="alice", entity_field="user_id") == dump(
        one_by_one, entity="alice", entity_field="user_id"
    )
    assert dump(joined, entity="alice", entity_field="user_id") == dump(
        whole, entity="alice", entity_field="user_id"
    )
    assert dump_model(fit_summary("alice", joined)) == dump_model(fit_summary("alice", whole))


def test_summary_parts_of_other_windows_are_refused() -> None:
    from workers.engine.summary import summarize_events

    events = history("alice", days=7, seed=3)
    parts = [
        persistence.dump_summary(
            summarize_events("alice", events, entity_field="user_id", window=w),
            entity="alice",
            entity_field="user_id",
        )
        for w in ("15min", "1h")
    ]
    with pytest.raises(IncompatibleModelError, match="windows"):
        persistence.load_summary(*parts)
