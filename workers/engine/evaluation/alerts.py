"""Quality as an analyst meets alerts: distinct entity-hours flagged, and incidents.

Row precision (``metrics.py``) counts scored rows; an analyst sees something else. Two
anomalies of one user in the same hour are one look, and the review page shows *incidents*
(one entity's anomalies chained in time, :func:`workers.engine.incidents.group_incidents`).
Here, from the anomaly documents the fleet wrote:

- **entity-hour precision**: share of distinct (entity, UTC hour) with an anomaly whose hour
  overlaps a labeled span of that entity;
- **incident precision**: share of incidents whose span overlaps a labeled span of theirs;
- **labels found**: share of labeled spans overlapped by at least one incident;

each for all anomalies, for medium+high and for high only (an incident's severity is its
highest anomaly's). A *false alert* is an anomaly overlapping no labeled span of its entity.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from workers.engine.evaluation.labels import LabeledIncident, Labels
from workers.engine.incidents import group_incidents

SEVERITY_LEVELS: dict[str, frozenset[str]] = {
    "all": frozenset({"low", "medium", "high"}),
    "medium+high": frozenset({"medium", "high"}),
    "high": frozenset({"high"}),
}
HOUR = pd.Timedelta(hours=1)
FALSE_ALERT_COLUMNS = ("entity", "start", "end", "severity", "detector", "score", "reason")


@dataclass(frozen=True)
class AlertReport:
    """Alert figures at one severity level. Ratios in [0, 1]; NaN where undefined."""

    level: str
    n_anomalies: int
    n_entity_hours: int
    n_entity_hours_true: int
    entity_hour_precision: float  # NaN when nothing is flagged
    n_incidents: int
    n_incidents_true: int
    incident_precision: float  # NaN when there is no incident
    n_labels: int
    n_labels_found: int
    label_recall: float  # NaN without labels


def _stamp(value: Any) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _by_entity(labels: Labels) -> dict[str, list[LabeledIncident]]:
    spans: dict[str, list[LabeledIncident]] = {}
    for incident in labels.incidents:
        spans.setdefault(str(incident.entity), []).append(incident)
    return spans


def _window_hits(start: pd.Timestamp, end: pd.Timestamp, span: LabeledIncident) -> bool:
    """Whether a half-open window [start, end) (a point when equal) overlaps a closed span."""
    return bool(start <= span.end and (end > span.start or start >= span.start))


def _span_hits(start: pd.Timestamp, end: pd.Timestamp, span: LabeledIncident) -> bool:
    """Whether a closed span [start, end] overlaps a labeled (closed) span."""
    return bool(start <= span.end and end >= span.start)


def _hours(start: pd.Timestamp, end: pd.Timestamp) -> list[pd.Timestamp]:
    first, last = start.floor("h"), end.floor("h")
    if end > start and end == last:  # a window ending on the hour does not reach into it
        last -= HOUR
    return list(pd.date_range(first, max(first, last), freq="h"))


def alert_reports(
    anomalies: Sequence[Mapping[str, Any]], labels: Labels, *, gap_s: float = 3600.0
) -> dict[str, AlertReport]:
    """One :class:`AlertReport` per level of :data:`SEVERITY_LEVELS` (``all`` first)."""
    spans = _by_entity(labels)
    docs = [a for a in anomalies if a.get("type", "anomaly") == "anomaly"]
    out: dict[str, AlertReport] = {}
    for level, severities in SEVERITY_LEVELS.items():
        mine = [a for a in docs if a.get("severity") in severities]
        hours: dict[tuple[str, pd.Timestamp], bool] = {}
        for a in mine:
            entity = str(a["entity"])
            start, end = _stamp(a["window_start"]), _stamp(a["window_end"])
            for hour in _hours(start, end):
                hit = any(_window_hits(hour, hour + HOUR, s) for s in spans.get(entity, []))
                hours[(entity, hour)] = hours.get((entity, hour), False) or hit
        incidents = group_incidents(mine, gap_s=gap_s)
        true_incidents = 0
        found: set[int] = set()
        for inc in incidents:
            start, end = _stamp(inc.start), _stamp(inc.end)
            hits = [id(s) for s in spans.get(str(inc.entity), []) if _span_hits(start, end, s)]
            true_incidents += bool(hits)
            found.update(hits)
        n_hours, n_true_hours = len(hours), sum(hours.values())
        out[level] = AlertReport(
            level=level,
            n_anomalies=len(mine),
            n_entity_hours=n_hours,
            n_entity_hours_true=n_true_hours,
            entity_hour_precision=n_true_hours / n_hours if n_hours else math.nan,
            n_incidents=len(incidents),
            n_incidents_true=true_incidents,
            incident_precision=true_incidents / len(incidents) if incidents else math.nan,
            n_labels=len(labels.incidents),
            n_labels_found=len(found),
            label_recall=len(found) / len(labels.incidents) if labels.incidents else math.nan,
        )
    return out


def false_alerts(anomalies: Sequence[Mapping[str, Any]], labels: Labels) -> pd.DataFrame:
    """Every anomaly overlapping no labeled span of its entity, as :data:`FALSE_ALERT_COLUMNS`
    (``reason``: the text of its first reason), sorted by entity and start."""
    spans = _by_entity(labels)
    rows = []
    for a in anomalies:
        if a.get("type", "anomaly") != "anomaly":
            continue
        entity = str(a["entity"])
        start, end = _stamp(a["window_start"]), _stamp(a["window_end"])
        if any(_window_hits(start, end, s) for s in spans.get(entity, [])):
            continue
        reasons = a.get("reasons") or []
        first = reasons[0].get("text", "") if reasons and isinstance(reasons[0], Mapping) else ""
        rows.append(
            (
                entity,
                a["window_start"],
                a["window_end"],
                a.get("severity"),
                a.get("detector"),
                float(a.get("score", math.nan)),
                first,
            )
        )
    frame = pd.DataFrame(rows, columns=list(FALSE_ALERT_COLUMNS))
    return frame.sort_values(["entity", "start"], kind="stable").reset_index(drop=True)


def _ratio(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.3f}"


def format_alerts(reports: Mapping[str, AlertReport]) -> str:
    """A text table of :func:`alert_reports` (one line per severity level)."""
    header = [
        "severity",
        "anomalies",
        "entity-hours",
        "true",
        "precision",
        "incidents",
        "true",
        "precision",
        "labels found",
    ]
    rows = [
        [
            r.level,
            str(r.n_anomalies),
            str(r.n_entity_hours),
            str(r.n_entity_hours_true),
            _ratio(r.entity_hour_precision),
            str(r.n_incidents),
            str(r.n_incidents_true),
            _ratio(r.incident_precision),
            f"{r.n_labels_found}/{r.n_labels}",
        ]
        for r in reports.values()
    ]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), sep, *(line(r) for r in rows)]) + "\n"
