"""Labeled scenario generators shaped unlike the demo, to judge detection on untuned data.

``generate_scenario(name, users=..., days=..., seed=..., start=...)`` returns a
:class:`~workers.engine.demo_data.DemoScenario`: events sorted by time with ``_id`` =
``<name>-<seed>-<n>``, labels in the format of ``workers.engine.evaluation.load_labels``, the
incidents and the benign (unlabeled) changes. See ``docs/scenarios.md``.

>>> s = generate_scenario("sparse", users=10, days=8, seed=2)
>>> s.events[0]["_id"], s.entity_field, "kinds" in s.labels
('sparse-2-000000', 'user_id', True)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from workers.engine.demo_data import (
    BenignChange,
    DemoScenario,
    Incident,
    first_day_ms,
    format_ts,
    labels_for,
    number_events,
)
from workers.engine.scenarios.attacks import USER_INCIDENT_KINDS, Span
from workers.engine.scenarios.people import RawEvent
from workers.engine.scenarios.population import LATE_SHARE, USER_MIXES, user_population
from workers.engine.scenarios.sites import MS_PER_DAY
from workers.engine.scenarios.streams import SERVICE_KINDS, service_population

__all__ = ["SCENARIOS", "SCENARIO_KINDS", "generate_scenario"]

_Generated = tuple[list[RawEvent], list[tuple[str, str]], list[tuple[str, str, int, str]]]


def _users(name: str) -> Callable[[int, int, Span], _Generated]:
    def generate(users: int, seed: int, span: Span) -> _Generated:
        raw, incidents = user_population(name, users, seed, span)
        return raw, incidents, []

    return generate


# name → (entity field, generator)
SCENARIOS: dict[str, tuple[str, Callable[[int, int, Span], _Generated]]] = {
    **{name: ("user_id", _users(name)) for name in USER_MIXES},
    "services": ("service", service_population),
}
SCENARIO_KINDS: dict[str, tuple[str, ...]] = {
    name: SERVICE_KINDS if name == "services" else USER_INCIDENT_KINDS for name in SCENARIOS
}


def generate_scenario(
    name: str,
    *,
    users: int = 200,
    days: int = 28,
    seed: int = 1,
    start: datetime | str | None = None,
) -> DemoScenario:
    """Scenario ``name`` (a key of ``SCENARIOS``) for ``users`` users over ``days`` days.

    For ``services``, ``users`` is the number of services (capped at ``streams.MAX_SERVICES``).
    About 15% of users (25% of services; at least one per kind) get one labeled incident in the
    last ~25% of days; benign changes there are listed in ``benign`` and not labeled. Same
    arguments → identical scenario. Raises ``ValueError`` for an unknown name or too small a size.
    """
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; choose one of {', '.join(SCENARIOS)}")
    if users < 1 or days < 4:
        raise ValueError(f"need users >= 1 and days >= 4, got users={users} days={days}")
    start_ms = first_day_ms(start)
    first_late = min(days - 1, math.ceil(days * (1.0 - LATE_SHARE)))
    span = Span(
        start_ms=start_ms,
        start_weekday=datetime.fromtimestamp(start_ms // 1000, tz=UTC).weekday(),
        days=days,
        late_days=tuple(range(first_late, days)),
    )
    entity_field, generate = SCENARIOS[name]
    raw, incident_kinds, changes = generate(users, seed, span)
    end_ms = start_ms + days * MS_PER_DAY
    raw = [e for e in raw if "incident" in e or start_ms <= e["ts"] < end_ms]
    return _assemble(name, raw, incident_kinds, changes, seed=seed, entity_field=entity_field)


def _assemble(
    name: str,
    raw: list[RawEvent],
    incident_kinds: list[tuple[str, str]],
    changes: list[tuple[str, str, int, str]],
    *,
    seed: int,
    entity_field: str,
) -> DemoScenario:
    events, members, rows = number_events(
        raw,
        id_prefix=f"{name}-{seed}",
        entity_field=entity_field,
        incidents=len(incident_kinds),
        tag="benign",
    )
    first_benign: dict[tuple[str, str], dict[str, Any]] = {}
    for entity, benign, doc in rows:
        if benign:
            first_benign.setdefault((entity, benign), doc)
    incidents = [
        Incident(
            entity, kind, docs[0]["timestamp"], docs[-1]["timestamp"], tuple(d["_id"] for d in docs)
        )
        for (entity, kind), docs in zip(incident_kinds, members, strict=True)
        if docs
    ]
    benign_changes = [
        BenignChange(entity, kind, doc["timestamp"], _detail(kind, doc))
        for (entity, kind), doc in sorted(first_benign.items())
    ]
    benign_changes += [BenignChange(e, k, format_ts(ts), d) for e, k, ts, d in changes]
    return DemoScenario(
        events=events,
        labels=labels_for(incidents),
        incidents=incidents,
        benign=benign_changes,
        entity_field=entity_field,
        seed=seed,
    )


def _detail(kind: str, doc: dict[str, Any]) -> str:
    if kind == "trip":
        return f"{doc['city']}, {doc['country']} via {doc['asn']}"
    if kind == "new_device":
        return str(doc["user_agent"])
    return "starts work an hour earlier"
