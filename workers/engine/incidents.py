"""Incidents: an entity's anomalies that belong together, as one case for an analyst.

Pure: no I/O. :func:`group_incidents` chains one entity's anomaly documents whose spans overlap
or lie within ``gap_s`` seconds of each other (across detectors: window + novelty) into one
:class:`Incident`. The incident id is ``incident:`` + a hash of (entity, id of its earliest
anomaly), so a rescore, or a later anomaly that extends the incident, keeps the id.

When an anomaly *earlier* than an incident's earliest one joins it (a late rescore of an older
range, or a gap-filling anomaly that chains two incidents), the earliest anomaly changes and so
does the id: the fleet then writes the new incident and marks the old documents
``superseded_by`` the new id; the new one inherits their review if it has none of its own.
The incident document, its merge and those two rules live in ``workers/store/incidents.py``.

Scores are in [0, 1], higher = more unusual; an incident's score is the max of its anomalies'.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from workers.engine.anomaly import SEVERITIES, iso_utc
from workers.events import parse_timestamp

INCIDENT_ID_PREFIX = "incident:"
DEFAULT_GAP_S = 3600.0
MAX_REASONS = 5
_RANK = {name: i for i, name in enumerate(SEVERITIES)}


@dataclass(frozen=True)
class Incident:
    """One entity's chained anomalies. ``start``/``end`` are canonical UTC text."""

    incident_id: str
    entity: str
    entity_field: str
    start: str
    end: str
    anomaly_ids: tuple[str, ...]
    severity: str
    score: float
    detectors: tuple[str, ...]
    reasons: tuple[dict[str, Any], ...]

    @property
    def n_anomalies(self) -> int:
        """How many anomalies the incident is made of."""
        return len(self.anomaly_ids)


def incident_id(entity: str, earliest_anomaly_id: str) -> str:
    """Return the deterministic incident id for (entity, id of its earliest anomaly)."""
    digest = hashlib.sha256(f"{entity}\x1f{earliest_anomaly_id}".encode())
    return INCIDENT_ID_PREFIX + digest.hexdigest()[:40]


def severity_rank(severity: Any) -> int:
    """Rank of a severity: low 0 < medium 1 < high 2 (unknown counts as low)."""
    return _RANK.get(str(severity), 0)


def _span(doc: Mapping[str, Any]) -> tuple[str, str]:
    start = iso_utc(doc["window_start"])
    end = iso_utc(doc.get("window_end") or doc["window_start"])
    return start, max(start, end)


def _seconds(text: str) -> float:
    return parse_timestamp(text).timestamp()


def _reason_key(reason: Mapping[str, Any]) -> tuple[str, ...]:
    text = reason.get("text")
    if text:
        return ("text", str(text))
    return ("feature", str(reason.get("feature")), repr(reason.get("value")))


def merged_reasons(
    anomalies: Sequence[Mapping[str, Any]], *, limit: int = MAX_REASONS
) -> list[dict[str, Any]]:
    """Reasons of ``anomalies`` deduplicated by text (or feature+value), at most ``limit``.

    Ranked by their anomaly's score (highest first), then by their order in that anomaly; each
    keeps its fields and gains ``anomaly_id``.
    """
    order = sorted(
        range(len(anomalies)),
        key=lambda i: (-float(anomalies[i].get("score") or 0.0), _span(anomalies[i]), i),
    )
    seen: set[tuple[str, ...]] = set()
    out: list[dict[str, Any]] = []
    for i in order:
        for reason in anomalies[i].get("reasons") or []:
            if not isinstance(reason, Mapping):
                continue
            key = _reason_key(reason)
            if key in seen:
                continue
            seen.add(key)
            out.append({**reason, "anomaly_id": str(anomalies[i]["_id"])})
            if len(out) >= limit:
                return out
    return out


def _incident(entity: str, members: list[Mapping[str, Any]]) -> Incident:
    spans = [_span(m) for m in members]
    earliest = min(range(len(members)), key=lambda i: (spans[i][0], str(members[i]["_id"])))
    severity = max((str(m.get("severity") or "low") for m in members), key=severity_rank)
    return Incident(
        incident_id=incident_id(entity, str(members[earliest]["_id"])),
        entity=entity,
        entity_field=str(members[earliest].get("entity_field") or ""),
        start=min(s for s, _ in spans),
        end=max(e for _, e in spans),
        anomaly_ids=tuple(sorted(str(m["_id"]) for m in members)),
        severity=severity if severity in _RANK else "low",
        score=max(float(m.get("score") or 0.0) for m in members),
        detectors=tuple(sorted({str(m.get("detector") or "") for m in members})),
        reasons=tuple(merged_reasons(members)),
    )


def group_incidents(
    anomalies: Sequence[Mapping[str, Any]], *, gap_s: float = DEFAULT_GAP_S
) -> list[Incident]:
    """Group anomaly documents (one or many entities) into incidents.

    Two anomalies of the same entity join when their spans overlap or the later one starts at
    most ``gap_s`` seconds after the incident so far ends (chained, so the incident grows).
    Documents of other types and duplicate ``_id``s are ignored. Returns incidents sorted by
    (entity, start).
    """
    if gap_s < 0:
        raise ValueError("gap_s must be >= 0")
    by_entity: dict[str, dict[str, Mapping[str, Any]]] = {}
    for doc in anomalies:
        if doc.get("type", "anomaly") != "anomaly" or "_id" not in doc:
            continue
        by_entity.setdefault(str(doc.get("entity")), {})[str(doc["_id"])] = doc
    incidents: list[Incident] = []
    for entity in sorted(by_entity):
        docs = sorted(by_entity[entity].values(), key=lambda d: (_span(d), str(d["_id"])))
        group: list[Mapping[str, Any]] = []
        group_end = 0.0
        for doc in docs:
            start, end = (_seconds(t) for t in _span(doc))
            if group and start - group_end > gap_s:
                incidents.append(_incident(entity, group))
                group = []
            group_end = max(group_end, end) if group else end
            group.append(doc)
        if group:
            incidents.append(_incident(entity, group))
    return incidents


__all__ = [
    "DEFAULT_GAP_S",
    "INCIDENT_ID_PREFIX",
    "Incident",
    "group_incidents",
    "incident_id",
    "merged_reasons",
    "severity_rank",
]
