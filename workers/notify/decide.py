"""Which anomalies notify, and which go out now versus folded into a later digest.

Pure: given the anomalies, the configured channels and how many messages each stream
(entity x channel) may still send in its rate window, return the notification plans.
A stream sends at most `limit` messages per window (default 1 per 600 s); the rest of its
anomalies wait as `digest` members, due when the window reopens, and go out as one message.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from workers.ids import entity_key

SEVERITY_RANK = {"low": 0, "medium": 1, "high": 2}


@dataclass(frozen=True)
class Plan:
    """One notification to create: `anomaly` on `channel`, `immediate` or `digest`, due when."""

    anomaly: Mapping[str, Any]
    channel: str
    mode: str
    due_at: datetime


@dataclass(frozen=True)
class Window:
    """What a stream's rate window allows now: `granted` immediate sends; reopens at."""

    granted: int
    reopens_at: datetime


def reaches(severity: Any, minimum: str) -> bool:
    """True when `severity` (low/medium/high) is at least `minimum`; unknown never reaches."""
    return SEVERITY_RANK.get(str(severity), -1) >= SEVERITY_RANK[minimum]


def notifiable(anomalies: Iterable[Mapping[str, Any]], minimum: str) -> list[Mapping[str, Any]]:
    """Anomalies or incidents that reach `minimum` severity and are not already dismissed by a
    person, highest score first (ties: earlier window or start, then id)."""
    chosen = [
        a
        for a in anomalies
        if a.get("type") in ("anomaly", "incident")
        and reaches(a.get("severity"), minimum)
        and (a.get("review") or {}).get("status") != "dismissed"
    ]
    return sorted(
        chosen,
        key=lambda a: (
            -float(a.get("score") or 0.0),
            str(a.get("window_start") or a.get("start")),
            a["_id"],
        ),
    )


def stream_key(channel: str, entity: Any) -> str:
    """The rate-limit stream of (channel, entity): a short key safe in Redis."""
    return f"{channel}:{entity_key(entity)}"


def group_by_stream(
    anomalies: Sequence[Mapping[str, Any]], channels: Sequence[str]
) -> dict[str, tuple[str, list[Mapping[str, Any]]]]:
    """{stream key: (channel, anomalies in rank order)} for every anomaly on every channel."""
    streams: dict[str, tuple[str, list[Mapping[str, Any]]]] = {}
    for channel in channels:
        for anomaly in anomalies:
            key = stream_key(channel, anomaly.get("entity"))
            streams.setdefault(key, (channel, []))[1].append(anomaly)
    return streams


def plan_stream(
    anomalies: Sequence[Mapping[str, Any]], channel: str, window: Window, now: datetime
) -> list[Plan]:
    """The first `window.granted` anomalies go out now; the rest wait for one digest that is
    due when the window reopens."""
    return [
        Plan(a, channel, "immediate", now)
        if i < window.granted
        else Plan(a, channel, "digest", window.reopens_at)
        for i, a in enumerate(anomalies)
    ]


def digest_groups(docs: Iterable[Mapping[str, Any]]) -> list[list[Mapping[str, Any]]]:
    """Due notifications as send groups: each `immediate` alone, `digest` members of one
    (channel, entity) together, oldest window first within a group."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for doc in docs:
        if doc.get("mode") == "digest":
            key = "d:" + stream_key(doc["channel"], doc.get("entity"))
        else:
            key = "i:" + doc["_id"]
        groups.setdefault(key, []).append(doc)
    for members in groups.values():
        members.sort(key=lambda d: (str(d["anomaly"].get("window_start")), d["_id"]))
    return list(groups.values())
