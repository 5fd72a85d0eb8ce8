"""Benchmark data: the demo scenario placed just before now, and many small cloned entities."""

from __future__ import annotations

import itertools
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from workers.engine.demo_data import DemoScenario, format_ts, generate_demo
from workers.events import parse_timestamp

Event = dict[str, Any]
TEMPLATE_USERS = 100


def day_start(days_ago: int) -> datetime:
    moment = datetime.now(UTC) - timedelta(days=days_ago)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def demo(users: int, days: int, seed: int = 7) -> DemoScenario:
    """The demo scenario ending the day before today (so every event is in the past)."""
    return generate_demo(users=users, days=days, seed=seed, start=day_start(days + 1))


def by_entity(events: list[Event], field: str = "user_id") -> dict[str, list[Event]]:
    out: dict[str, list[Event]] = defaultdict(list)
    for event in events:
        out[str(event[field])].append(event)
    return dict(out)


def split_by_time(events: list[Event], *fractions: float) -> list[list[Event]]:
    """Split events (sorted by timestamp) at the given cumulative fractions."""
    ordered = sorted(events, key=lambda e: e["timestamp"])
    cuts = [0, *(int(len(ordered) * f) for f in fractions), len(ordered)]
    return [ordered[a:b] for a, b in itertools.pairwise(cuts)]


def _templates(per_entity: int, days_ago: int, seed: int) -> list[list[Event]]:
    scenario = generate_demo(users=TEMPLATE_USERS, days=3, seed=seed, start=day_start(days_ago))
    # only login/request events that are not part of an injected incident: small, normal lives
    bad = {i for inc in scenario.incidents for i in inc.event_ids}
    groups = by_entity([e for e in scenario.events if e["_id"] not in bad])
    return [evs[:per_entity] for evs in groups.values() if len(evs) >= per_entity]


def _clone(template: list[Event], entity: str, tag: str) -> list[Event]:
    return [
        {**e, "_id": f"{tag}-{entity}-{k:03d}", "user_id": entity} for k, e in enumerate(template)
    ]


def small_entities(
    n: int, history: int, fresh: int, *, prefix: str, seed: int = 3
) -> tuple[list[Event], list[Event]]:
    """`n` entities with `history` + `fresh` events each, cloned from real demo users."""
    templates = _templates(history + fresh, days_ago=4, seed=seed)
    old: list[Event] = []
    new: list[Event] = []
    for i in range(n):
        events = _clone(templates[i % len(templates)], entity_id(prefix, i), "ev")
        old += events[:history]
        new += events[history:]
    return old, new


def entity_id(prefix: str, i: int) -> str:
    return f"{prefix}{i:06d}"


def older_history(entities: list[str], total: int, *, seed: int = 5) -> list[Event]:
    """`total` events from ~3 weeks ago over `entities` (history scored long ago)."""
    per = max(1, total // max(1, len(entities)))
    templates = _templates(per, days_ago=21, seed=seed)
    out: list[Event] = []
    for i, entity in enumerate(entities):
        out += _clone(templates[i % len(templates)], entity, "old")
        if len(out) >= total:
            break
    return out[:total]


def later_events(last: dict[str, Event], entities: list[str], total: int, tag: str) -> list[Event]:
    """`total` new events after each entity's last event (copies of it, minutes later)."""
    per = max(1, total // max(1, len(entities)))
    out: list[Event] = []
    for entity in entities:
        base = last[entity]
        moment = parse_timestamp(base["timestamp"])
        for k in range(per):
            stamp = int((moment + timedelta(minutes=k + 1)).timestamp() * 1000)
            out.append({**base, "_id": f"{tag}-{entity}-{k:03d}", "timestamp": format_ts(stamp)})
    return out[:total]
