"""Seeded demo scenario: realistic per-user events with labeled incidents injected late.

``generate_demo`` is pure and deterministic in its arguments; ``write_demo`` writes
``events.jsonl`` (one event document per line) and ``labels.json``::

    {"<entity>": [["<start>", "<end>"], ...], "kinds": {"<entity>": ["account_takeover", ...]}}

Incidents fall in the last ~25% of days so a production-like split (train on the first 70% of
each entity's span) scores them. Benign changes (a user adding a phone) are not labeled.

>>> s = generate_demo(users=6, days=8, seed=1)
>>> s.events[0]["_id"], sorted(s.labels) == sorted([*s.labels["kinds"], "kinds"])
('demo-1-000000', True)
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from workers.engine.demo.activity import MS_PER_DAY, RawEvent, normal_activity
from workers.engine.demo.catalog import PHONE_DEVICES, USER_AGENTS
from workers.engine.demo.incidents import INCIDENT_KINDS, INJECTORS, Context
from workers.engine.demo.profiles import Profile, make_profile
from workers.engine.demo.services import (
    SERVICE_INCIDENT_KINDS,
    SERVICE_INJECTORS,
    make_service,
    service_activity,
)
from workers.events import NoTimezoneOffset, canonical_timestamp, parse_timestamp

DEFAULT_START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
INCIDENT_SHARE = 0.24  # share of users that get one incident
BENIGN_SHARE = 0.10  # share of users that add a new phone
LATE_SHARE = 0.25  # incidents and benign changes happen in this last share of days

_PURPOSE_PROFILE, _PURPOSE_ACTIVITY, _PURPOSE_INCIDENT, _PURPOSE_PLAN = 0, 1, 2, 3


@dataclass(frozen=True)
class Incident:
    """One injected, labeled incident: entity, kind, span (canonical UTC) and its event ids."""

    entity: str
    kind: str
    start: str
    end: str
    event_ids: tuple[str, ...]


@dataclass(frozen=True)
class BenignChange:
    """A change that looks new but is legitimate and therefore NOT labeled."""

    entity: str
    kind: str  # "new_phone"
    start: str  # first event with the change
    detail: str  # e.g. the new device's user agent


@dataclass
class DemoScenario:
    """Events (sorted by time, ``_id`` = ``demo-<seed>-<n>``) and labels in the labels format."""

    events: list[dict[str, Any]]
    labels: dict[str, Any]
    incidents: list[Incident] = field(default_factory=list)
    benign: list[BenignChange] = field(default_factory=list)
    entity_field: str = "user_id"
    seed: int = 7


def format_ts(ms: int) -> str:
    """Canonical UTC ISO string ``YYYY-MM-DDTHH:MM:SS.mmmZ`` for epoch milliseconds."""
    moment = datetime.fromtimestamp(ms // 1000, tz=UTC) + timedelta(milliseconds=ms % 1000)
    return canonical_timestamp(moment)


def first_day_ms(start: datetime | str | None) -> int:
    """Epoch ms of 00:00 UTC on the day of ``start`` (default ``DEFAULT_START``; naive is UTC)."""
    if start is None:
        moment = DEFAULT_START
    elif isinstance(start, str):
        try:
            moment = parse_timestamp(start)
        except NoTimezoneOffset:
            moment = datetime.fromisoformat(start)  # naive: UTC (below)
    else:
        moment = start
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    day = moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return int(day.timestamp()) * 1000


def _rng(seed: int, index: int, purpose: int) -> np.random.Generator:
    return np.random.default_rng([seed, index, purpose])


def _plan(users: int, seed: int, kinds_: tuple[str, ...]) -> tuple[dict[int, str], list[int]]:
    """Which entities get which incident kind, and which make a benign change."""
    rng = _rng(seed, users, _PURPOSE_PLAN)
    order = [int(i) for i in rng.permutation(users)]
    n_incidents = min(users, max(len(kinds_), round(users * INCIDENT_SHARE)))
    n_benign = min(users - n_incidents, max(1, round(users * BENIGN_SHARE)))
    kinds = {idx: kinds_[i % len(kinds_)] for i, idx in enumerate(order[:n_incidents])}
    return kinds, order[n_incidents : n_incidents + n_benign]


def generate_demo(
    *,
    users: int = 50,
    days: int = 21,
    seed: int = 7,
    entity_field: str = "user_id",
    start: datetime | str | None = None,
) -> DemoScenario:
    """Generate ``users`` users over ``days`` days from ``start`` (default 2026-01-05 UTC).

    About 24% of users (at least one per kind when there are ≥ 5 users) get one incident of
    the kinds in ``INCIDENT_KINDS``; about 10% add a new phone (benign, unlabeled). The entity id
    is written under ``entity_field``. With ``entity_field="service"`` the entities are
    ``users`` services instead (24/7 metric-style streams, ~4k events each, with the kinds in
    ``SERVICE_INCIDENT_KINDS`` and a benign new ``/v2`` endpoint). Same arguments → identical
    scenario.
    """
    if users < 1 or days < 2:
        raise ValueError(f"need users >= 1 and days >= 2, got users={users} days={days}")
    start_ms = first_day_ms(start)
    start_weekday = datetime.fromtimestamp(start_ms // 1000, tz=UTC).weekday()
    first_late = min(days - 1, math.ceil(days * (1.0 - LATE_SHARE)))
    ctx = Context(
        start_ms=start_ms, start_weekday=start_weekday, late_days=list(range(first_late, days))
    )
    make = _service_events if entity_field == "service" else _user_events
    raw, incident_kinds, changes = make(users, seed, ctx, days)
    end_ms = start_ms + days * MS_PER_DAY
    raw = [e for e in raw if "incident" in e or start_ms <= e["ts"] < end_ms]
    return _assemble(raw, incident_kinds, changes, seed=seed, entity_field=entity_field)


_Generated = tuple[list[RawEvent], list[tuple[str, str]], dict[str, tuple[str, str, str]]]


def _user_events(users: int, seed: int, ctx: Context, days: int) -> _Generated:
    kinds, benign_users = _plan(users, seed, INCIDENT_KINDS)
    raw: list[RawEvent] = []
    incident_kinds: list[tuple[str, str]] = []
    changes: dict[str, tuple[str, str, str]] = {}  # entity → (kind, field, new value)
    for index in range(users):
        profile = make_profile(_rng(seed, index, _PURPOSE_PROFILE), index)
        if index in benign_users:
            device = _add_new_phone(_rng(seed, index, _PURPOSE_PLAN), profile, ctx)
            changes[profile.entity] = ("new_phone", "user_agent", USER_AGENTS[device])
        raw += normal_activity(
            _rng(seed, index, _PURPOSE_ACTIVITY),
            profile,
            start_ms=ctx.start_ms,
            start_weekday=ctx.start_weekday,
            days=days,
        )
        if index in kinds:
            injected = INJECTORS[kinds[index]](_rng(seed, index, _PURPOSE_INCIDENT), profile, ctx)
            for event in injected:
                if not event.pop("benign", False):
                    event["incident"] = len(incident_kinds)
            incident_kinds.append((profile.entity, kinds[index]))
            raw += injected
    return raw, incident_kinds, changes


def _service_events(services: int, seed: int, ctx: Context, days: int) -> _Generated:
    kinds, benign = _plan(services, seed, SERVICE_INCIDENT_KINDS)
    raw: list[RawEvent] = []
    incident_kinds: list[tuple[str, str]] = []
    changes: dict[str, tuple[str, str, str]] = {}
    for index in range(services):
        profile = make_service(_rng(seed, index, _PURPOSE_PROFILE), index)
        if index in benign and not profile.metric_only:
            endpoint = "/v2/" + profile.endpoints[0].removeprefix("/v1/")
            profile.new_endpoint = (endpoint, ctx.workdays()[0])
            changes[profile.entity] = ("new_endpoint", "endpoint", endpoint)
        events = service_activity(
            _rng(seed, index, _PURPOSE_ACTIVITY),
            profile,
            start_ms=ctx.start_ms,
            start_weekday=ctx.start_weekday,
            days=days,
        )
        if index in kinds:
            injector = SERVICE_INJECTORS[kinds[index]]
            for event in injector(_rng(seed, index, _PURPOSE_INCIDENT), profile, ctx, events):
                event["incident"] = len(incident_kinds)
            incident_kinds.append((profile.entity, kinds[index]))
        raw += events
    return raw, incident_kinds, changes


def _add_new_phone(rng: np.random.Generator, p: Profile, ctx: Context) -> str:
    phones = [d for d in PHONE_DEVICES if d not in p.devices]
    device = phones[int(rng.integers(len(phones)))]
    days = ctx.workdays()
    p.new_device = (device, days[int(rng.integers(len(days)))])
    return device


def number_events(
    raw: list[RawEvent],
    *,
    id_prefix: str,
    entity_field: str,
    incidents: int,
    tag: str | None = None,
) -> tuple[list[dict[str, Any]], list[list[dict[str, Any]]], list[tuple[str, Any, dict[str, Any]]]]:
    """Sort ``raw`` (in place) and turn it into event documents ``{id_prefix}-{n:06d}``.

    Pops ``incident``, ``entity``, ``ts`` (and ``tag`` when given) from each raw event. Returns
    the documents in order, the documents of each of the ``incidents`` incidents, and one
    ``(entity, tag value or None, document)`` per document.
    """
    raw.sort(key=lambda e: (e["ts"], e["entity"], e.get("type", ""), e.get("endpoint", "")))
    events: list[dict[str, Any]] = []
    members: list[list[dict[str, Any]]] = [[] for _ in range(incidents)]
    rows: list[tuple[str, Any, dict[str, Any]]] = []
    for n, e in enumerate(raw):
        incident = e.pop("incident", None)
        tagged = e.pop(tag, None) if tag is not None else None
        entity = e.pop("entity")
        doc = {
            "_id": f"{id_prefix}-{n:06d}",
            entity_field: entity,
            "timestamp": format_ts(e.pop("ts")),
        }
        doc.update(e)
        events.append(doc)
        if incident is not None:
            members[incident].append(doc)
        rows.append((entity, tagged, doc))
    return events, members, rows


def _assemble(
    raw: list[RawEvent],
    incident_kinds: list[tuple[str, str]],
    changes: dict[str, tuple[str, str, str]],
    *,
    seed: int,
    entity_field: str,
) -> DemoScenario:
    events, members, rows = number_events(
        raw, id_prefix=f"demo-{seed}", entity_field=entity_field, incidents=len(incident_kinds)
    )
    first_change: dict[str, dict[str, Any]] = {}
    for entity, _, doc in rows:
        if entity in changes and doc.get(changes[entity][1]) == changes[entity][2]:
            first_change.setdefault(entity, doc)
    incidents = [
        Incident(
            entity=entity,
            kind=kind,
            start=docs[0]["timestamp"],
            end=docs[-1]["timestamp"],
            event_ids=tuple(d["_id"] for d in docs),
        )
        for (entity, kind), docs in zip(incident_kinds, members, strict=True)
    ]
    benign = [
        BenignChange(
            entity=entity,
            kind=changes[entity][0],
            start=doc["timestamp"],
            detail=changes[entity][2],
        )
        for entity, doc in sorted(first_change.items())
    ]
    return DemoScenario(
        events=events,
        labels=labels_for(incidents),
        incidents=incidents,
        benign=benign,
        entity_field=entity_field,
        seed=seed,
    )


def labels_for(incidents: list[Incident]) -> dict[str, Any]:
    """The labels document for ``incidents``: spans per entity plus a parallel ``kinds`` map."""
    labels: dict[str, Any] = {}
    kinds: dict[str, list[str]] = {}
    for incident in sorted(incidents, key=lambda i: (i.entity, i.start)):
        labels.setdefault(incident.entity, []).append([incident.start, incident.end])
        kinds.setdefault(incident.entity, []).append(incident.kind)
    labels["kinds"] = kinds
    return labels


def write_demo(outdir: str | Path, scenario: DemoScenario) -> tuple[Path, Path]:
    """Write ``events.jsonl`` and ``labels.json`` into ``outdir``; returns both paths."""
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    events_path, labels_path = out / "events.jsonl", out / "labels.json"
    with events_path.open("w", encoding="utf-8") as fh:
        for event in scenario.events:
            fh.write(json.dumps(event, separators=(",", ":")) + "\n")
    labels_path.write_text(json.dumps(scenario.labels, indent=2) + "\n", encoding="utf-8")
    return events_path, labels_path
