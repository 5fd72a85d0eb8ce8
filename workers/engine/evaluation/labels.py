"""Labeled incident spans: the labels document, validated, and timestamp parsing.

Format (written by ``couchwatch demo-data``; ``kinds`` is optional, parallel to the spans)::

    {"<entity>": [["<start>", "<end>"], ...], "kinds": {"<entity>": ["<kind>", ...]}}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

KINDS_KEY = "kinds"
UNKNOWN_KIND = "unknown"


class LabelsError(ValueError):
    """A labels document is malformed; the message says where, in one line."""


@dataclass(frozen=True)
class LabeledIncident:
    """One labeled span of one entity, closed ``[start, end]`` in UTC."""

    entity: str
    start: pd.Timestamp
    end: pd.Timestamp
    kind: str = UNKNOWN_KIND


@dataclass(frozen=True)
class Labels:
    """Validated labels: every incident, in the order of the document."""

    incidents: tuple[LabeledIncident, ...]

    def __len__(self) -> int:
        return len(self.incidents)

    def entities(self) -> set[str]:
        """The entities that have at least one labeled span."""
        return {i.entity for i in self.incidents}

    def for_entity(self, entity: str) -> list[LabeledIncident]:
        """The labeled incidents of ``entity`` (possibly none)."""
        return [i for i in self.incidents if i.entity == entity]


def to_utc(values: Iterable[Any], *, what: str = "timestamp") -> pd.Series:
    """Parse ISO 8601 strings (naive = UTC), datetimes or epoch seconds into UTC timestamps.

    Raises ``ValueError`` naming the first value that is none of these.
    """
    if isinstance(values, pd.Series) and pd.api.types.is_datetime64_any_dtype(values.dtype):
        series = values.reset_index(drop=True)
        if series.dt.tz is None:
            series = series.dt.tz_localize("UTC")
        if series.isna().any():
            raise ValueError(f"{what} has missing values")
        return series.dt.tz_convert("UTC")
    raw = pd.Series(list(values), dtype=object)
    numeric = raw.map(lambda v: isinstance(v, int | float) and not isinstance(v, bool)).astype(bool)
    out = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns, UTC]")
    if numeric.any():
        seconds = pd.to_numeric(raw[numeric], errors="coerce").astype(float)
        out[numeric] = pd.to_datetime(seconds, unit="s", utc=True, errors="coerce")
    if (~numeric).any():
        text = raw[~numeric]
        out[~numeric] = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
    bad = out.isna()
    if bad.any():
        raise ValueError(f"{what} {raw[bad].iloc[0]!r} is not an ISO 8601 timestamp or epoch")
    return out


def _one_ts(value: Any, where: str) -> pd.Timestamp:
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise LabelsError(f"labels: {where} must be an ISO 8601 string, got {value!r}")
    try:
        return pd.Timestamp(to_utc([value]).iloc[0])
    except ValueError:
        raise LabelsError(f"labels: {where} {value!r} is not an ISO 8601 timestamp") from None


def load_labels(obj: Any) -> Labels:
    """Validate a parsed labels document and return :class:`Labels`.

    Raises :class:`LabelsError` with a one-line message on the first problem found.
    """
    if not isinstance(obj, Mapping):
        raise LabelsError(
            f"labels: expected a JSON object of entity -> [[start, end], ...], "
            f"got {type(obj).__name__}"
        )
    kinds = obj.get(KINDS_KEY, {})
    if not isinstance(kinds, Mapping):
        raise LabelsError(f"labels: '{KINDS_KEY}' must be an object of entity -> [kind, ...]")
    incidents: list[LabeledIncident] = []
    for entity, spans in obj.items():
        if entity == KINDS_KEY:
            continue
        if not isinstance(entity, str) or not entity:
            raise LabelsError(f"labels: entity names must be non-empty strings, got {entity!r}")
        if not isinstance(spans, list):
            raise LabelsError(f"labels: entity {entity!r} must map to a list of [start, end] spans")
        entity_kinds = kinds.get(entity)
        if entity_kinds is not None and (
            not isinstance(entity_kinds, list)
            or len(entity_kinds) != len(spans)
            or not all(isinstance(k, str) and k for k in entity_kinds)
        ):
            raise LabelsError(
                f"labels: kinds of {entity!r} must be a list of {len(spans)} non-empty strings, "
                f"one per span"
            )
        for n, span in enumerate(spans):
            where = f"entity {entity!r} span {n}"
            if not isinstance(span, list | tuple) or len(span) != 2:
                raise LabelsError(f"labels: {where} must be a [start, end] pair, got {span!r}")
            start = _one_ts(span[0], f"{where} start")
            end = _one_ts(span[1], f"{where} end")
            if end < start:
                raise LabelsError(f"labels: {where} ends before it starts ({span[0]} > {span[1]})")
            kind = entity_kinds[n] if entity_kinds is not None else UNKNOWN_KIND
            incidents.append(LabeledIncident(entity, start, end, kind))
    unknown = sorted(set(kinds) - set(obj) - {KINDS_KEY})
    if unknown:
        raise LabelsError(f"labels: kinds given for entity {unknown[0]!r} which has no spans")
    return Labels(tuple(incidents))
