"""What the engine finds: a typed :class:`Finding` per flagged window or login.

A finding carries what was found (entity, detector kind, span, events, score, threshold,
severity, confidence, reasons, detector scores, the model that scored it) and the ``key`` that
makes a rescore of the same window or login the same finding (the window start, or the event id
of a single-event finding). It holds no document fields: ``workers/store/anomalies.py`` maps it
to the anomaly document (``_id``, ``review``, timestamps) and merges a rescore onto a stored one.
Scores are in [0, 1], higher = more unusual.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from workers.events import canonical_timestamp

SEVERITIES = ("low", "medium", "high")


def iso_utc(value: Any) -> str:
    """Return ``value`` (datetime, Timestamp or ISO text) as canonical UTC ``...T..:..:...sssZ``."""
    return canonical_timestamp(pd.Timestamp(value))  # naive is UTC


@dataclass(frozen=True, kw_only=True)
class Finding:
    """One flagged window or login of an entity. Times are canonical UTC text."""

    entity: str
    entity_field: str
    detector: str  # the window detector kind (e.g. ``combined``) or ``novelty`` for a login
    window_start: str
    window_end: str
    event_ids: tuple[str, ...]
    score: float  # [0, 1], higher = more unusual
    threshold: float  # flagged when ``score`` exceeds it
    severity: str  # one of SEVERITIES
    confidence: float  # [0, 1]; below 1 for a cold-start model
    reasons: tuple[dict[str, Any], ...]
    model_id: str
    model_version: int
    detector_scores: Mapping[str, float] = field(default_factory=dict)
    key: str = ""  # the window start when empty; the event id of a single-event finding

    @property
    def identity(self) -> str:
        """What makes a rescore the same finding: ``key``, or the window start."""
        return self.key or self.window_start


def finding(
    *,
    entity: Any,
    entity_field: str,
    detector: str,
    window_start: Any,
    window_end: Any,
    event_ids: Sequence[Any],
    score: float,
    threshold: float,
    severity: str,
    confidence: float,
    reasons: Sequence[Mapping[str, Any]],
    model_id: str,
    model_version: int,
    key: str | None = None,
    detector_scores: Mapping[str, float] | None = None,
) -> Finding:
    """A :class:`Finding` from raw values (numpy scalars, Timestamps): plain floats and text."""
    return Finding(
        entity=str(entity),
        entity_field=entity_field,
        detector=detector,
        window_start=iso_utc(window_start),
        window_end=iso_utc(window_end),
        event_ids=tuple(str(e) for e in event_ids),
        score=float(score),
        threshold=float(threshold),
        severity=severity,
        confidence=float(confidence),
        reasons=tuple(dict(r) for r in reasons),
        model_id=model_id,
        model_version=model_version,
        detector_scores={k: float(v) for k, v in (detector_scores or {}).items()},
        key=key or "",
    )
