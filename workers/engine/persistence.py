"""Saving and loading entity models without executing code.

A model is stored as a zip envelope of exactly two members: ``envelope.json`` (format version,
library versions, feature list, entity metadata and the model's plain-data state) and
``arrays.npz`` (numpy arrays, read with ``allow_pickle=False``). Detector classes are looked up
in a fixed registry by name, never imported from the payload. Consequently:

- a pickle (or anything that is not this envelope) raises :class:`UnsafeModelError`;
- an object array inside ``arrays.npz`` (which would need pickle) raises :class:`UnsafeModelError`;
- an envelope from another format or numpy / scikit-learn minor version raises
  :class:`IncompatibleModelError` — the caller retrains.
"""

from __future__ import annotations

import dataclasses
import io
import json
import zipfile
from collections.abc import Mapping
from typing import Any

import numpy as np
import sklearn

from .config import EngineConfig
from .detectors import WINDOW_DETECTOR_CLASSES, NoveltyProfile, RobustZScore, TimeOfDayProfile
from .detectors.rates import RateProfile
from .detectors.seasonal import SeasonalBaseline
from .errors import IncompatibleModelError, ModelLoadError, UnsafeModelError
from .model import EntityModel
from .summary import HistorySummary, joined_states, summary_from_state

FORMAT = "couchwatch-model"
SUMMARY_FORMAT = "couchwatch-history-summary"
FORMAT_VERSION = 2
ENVELOPE = "envelope.json"
ARRAYS = "arrays.npz"
MAX_UNCOMPRESSED = 64 * 2**20
ZIP_MAGIC = b"PK\x03\x04"
_ARRAY_KEY = "__ndarray__"


def library_versions() -> dict[str, str]:
    """Return the numpy and scikit-learn versions this process would write."""
    return {"numpy": np.__version__, "scikit-learn": sklearn.__version__}


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def _encode(value: Any, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(value, np.ndarray):
        key = f"a{len(arrays)}"
        arrays[key] = value
        return {_ARRAY_KEY: key}
    if isinstance(value, Mapping):
        return {str(k): _encode(v, arrays) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(v, arrays) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _decode(value: Any, arrays: Mapping[str, np.ndarray]) -> Any:
    if isinstance(value, dict):
        if set(value) == {_ARRAY_KEY}:
            return arrays[value[_ARRAY_KEY]]
        return {k: _decode(v, arrays) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v, arrays) for v in value]
    return value


def model_state(model: EntityModel) -> dict[str, Any]:
    """Return the model as plain data (dicts, lists, numbers, strings, numpy arrays)."""
    state = {f.name: getattr(model, f.name) for f in dataclasses.fields(model)}
    state["config"] = dataclasses.asdict(model.config)
    state["detectors"] = {name: det.to_state() for name, det in model.detectors.items()}
    state["detector_order"] = list(model.detectors)
    state["zscore"] = model.zscore.to_state() if model.zscore else None
    state["time"] = model.time.to_state() if model.time else None
    state["rates"] = model.rates.to_state() if model.rates else None
    state["seasonal"] = model.seasonal.to_state() if model.seasonal else None
    state["novelty"] = model.novelty.to_state() if model.novelty else None
    return state


def model_from_state(state: Mapping[str, Any]) -> EntityModel:
    """Rebuild an :class:`EntityModel` from :func:`model_state` output."""
    cfg = dict(state["config"])
    cfg["detectors"] = tuple(cfg["detectors"])
    cfg["severity_factors"] = tuple(cfg["severity_factors"])
    detectors = {}
    unknown = sorted(set(state["detectors"]) - set(WINDOW_DETECTOR_CLASSES))
    if unknown:
        raise UnsafeModelError(f"unknown detector(s) {unknown} in model envelope")
    order = state.get("detector_order") or list(state["detectors"])
    if sorted(order) != sorted(state["detectors"]):
        raise ModelLoadError("detector_order does not match the stored detectors")
    for name in order:
        det_state = state["detectors"][name]
        if name not in WINDOW_DETECTOR_CLASSES:
            raise UnsafeModelError(f"unknown detector {name!r} in model envelope")
        detectors[name] = WINDOW_DETECTOR_CLASSES[name].from_state(det_state)
    fields = {f.name for f in dataclasses.fields(EntityModel)}
    kwargs = {k: v for k, v in state.items() if k in fields}
    kwargs.update(
        config=EngineConfig(**cfg),
        features=tuple(state["features"]),
        known_endpoints=tuple(state["known_endpoints"]),
        detectors=detectors,
        zscore=RobustZScore.from_state(state["zscore"]) if state["zscore"] else None,
        time=TimeOfDayProfile.from_state(state["time"]) if state["time"] else None,
        rates=RateProfile.from_state(state["rates"]) if state["rates"] else None,
        seasonal=SeasonalBaseline.from_state(state["seasonal"]) if state["seasonal"] else None,
        novelty=NoveltyProfile.from_state(state["novelty"]) if state["novelty"] else None,
    )
    return EntityModel(**kwargs)


def dump_model(model: EntityModel) -> bytes:
    """Serialize ``model`` to a zip envelope (bytes); loadable by :func:`load_model` only.

    The output is deterministic: the same model gives the same bytes (stable attachment digest).
    """
    return _pack(
        FORMAT,
        model_state(model),
        entity=model.entity,
        entity_field=model.entity_field,
        features=list(model.features),
        detectors=list(model.window_detectors) + (["novelty"] if model.novelty else []),
    )


def dump_summary(summary: HistorySummary, *, entity: str, entity_field: str) -> bytes:
    """Serialize an entity's history summary (:mod:`.summary`) to the same kind of envelope;
    loadable by :func:`load_summary` only."""
    return _pack(SUMMARY_FORMAT, summary.to_state(), entity=entity, entity_field=entity_field)


def load_summary(data: bytes, *more: bytes) -> HistorySummary:
    """Load a summary written by :func:`dump_summary` (the same safety checks as a model;
    :class:`IncompatibleModelError` for another summary format). With ``more``: the summaries
    of consecutive day ranges, in day order, joined into one (as :func:`.summary.combined`)."""
    states = []
    for part in (data, *more):
        envelope, arrays = read_envelope(part, marker=SUMMARY_FORMAT)
        states.append(_decode(envelope["state"], arrays))
    try:
        return summary_from_state(states[0] if not more else joined_states(states))
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise IncompatibleModelError(f"history summary is not usable: {exc}") from exc


def _pack(marker: str, state: Mapping[str, Any], **fields: Any) -> bytes:
    """A zip envelope of ``state`` (plain data and numpy arrays) under format ``marker``."""
    arrays: dict[str, np.ndarray] = {}
    envelope = {
        "format": marker,
        "format_version": FORMAT_VERSION,
        "libraries": library_versions(),
        **fields,
        "state": _encode(state, arrays),
    }
    npz = io.BytesIO()
    with zipfile.ZipFile(npz, "w", compression=zipfile.ZIP_STORED) as zf:
        for key, array in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(array), allow_pickle=False)
            zf.writestr(_member(f"{key}.npy"), buf.getvalue())
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        text = json.dumps(envelope, sort_keys=True, separators=(",", ":"))
        zf.writestr(_member(ENVELOPE), text)
        zf.writestr(_member(ARRAYS), npz.getvalue())
    return out.getvalue()


def _member(name: str) -> zipfile.ZipInfo:
    """A zip member with a fixed timestamp, so the same model always gives the same bytes."""
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def read_envelope(
    data: bytes, *, marker: str = FORMAT
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Return (envelope JSON, arrays) after the safety checks; nothing is built."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise UnsafeModelError("model data must be bytes")
    data = bytes(data)
    if data[:1] == b"\x80" or not data.startswith(ZIP_MAGIC):
        raise UnsafeModelError(
            "refusing to load: not a couchwatch model envelope (pickle payloads are never loaded)"
        )
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
            names = sorted(i.filename for i in infos)
            if names != sorted([ENVELOPE, ARRAYS]):
                raise UnsafeModelError(f"unexpected members in model envelope: {names}")
            if sum(i.file_size for i in infos) > MAX_UNCOMPRESSED:
                raise UnsafeModelError("model envelope too large when uncompressed")
            envelope = json.loads(zf.read(ENVELOPE).decode("utf-8"))
            npz_bytes = zf.read(ARRAYS)
    except (zipfile.BadZipFile, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"corrupt model envelope: {exc}") from exc
    if not isinstance(envelope, dict) or envelope.get("format") != marker:
        raise UnsafeModelError(f"envelope has no {marker} format marker")
    arrays: dict[str, np.ndarray] = {}
    try:
        with np.load(io.BytesIO(npz_bytes), allow_pickle=False) as npz:
            for key in npz.files:
                arrays[key] = npz[key]
    except ValueError as exc:
        raise UnsafeModelError(f"model arrays need pickle, refused: {exc}") from exc
    except (OSError, zipfile.BadZipFile) as exc:
        raise ModelLoadError(f"corrupt model arrays: {exc}") from exc
    return envelope, arrays


def load_model(data: bytes) -> EntityModel:
    """Load a model written by :func:`dump_model`.

    Raises :class:`UnsafeModelError` for anything that is not a plain-data envelope and
    :class:`IncompatibleModelError` for another format or numpy / scikit-learn minor version.
    """
    envelope, arrays = read_envelope(data)
    if envelope.get("format_version") != FORMAT_VERSION:
        raise IncompatibleModelError(
            f"model format {envelope.get('format_version')!r}, expected {FORMAT_VERSION}"
        )
    saved = envelope.get("libraries") or {}
    for lib, version in library_versions().items():
        if _minor(str(saved.get(lib, ""))) != _minor(version):
            raise IncompatibleModelError(
                f"model saved with {lib} {saved.get(lib)!r}, running {version}; retrain"
            )
    try:
        return model_from_state(_decode(envelope["state"], arrays))
    except UnsafeModelError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelLoadError(f"model envelope state is invalid: {exc}") from exc
