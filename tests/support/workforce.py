"""A third, independent scenario generator: a workforce that does not keep office hours.

Written apart from the engine, from ``workers.engine.scenarios`` and from
``tests.support.shapes`` (only their output format is shared: :class:`Shaped`, the event
fields, the labels document), so detection quality is also judged on behaviour nobody tuned
for. People (``tests.support.workforce_people``) are call-centre agents on weekly rotating
shifts, part-timers on fixed days, on-call engineers with normal night pages, remote
contractors behind VPN exits, office workers with a laptop and a phone, and sparse users.
Events carry the device's IANA zone in ``tz``; the place, ASN and address follow the network.

Scenarios (``SCENARIOS``): ``rotating``, ``parttime``, ``remote``, ``mixed``. Each holds six
labeled incidents, one per kind of ``tests.support.workforce_incidents``, on six distinct users
in the last quarter of the period, each label spanning exactly its incident's events. Benign
changes are left unlabeled and listed in ``Shaped.benign``: a new phone, a trip abroad, a
relocation (a long stay in another zone), a move to another shift rotation, and a team adopting
a new endpoint. Deterministic per seed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from tests.support.shapes import Shaped
from tests.support.workforce_incidents import BUILDERS, KINDS, eligible, first_incident_day
from tests.support.workforce_people import (
    Person,
    Session,
    Stay,
    abroad_city,
    make_person,
    person_sessions,
    render_session,
)
from tests.support.workforce_places import NEW_PHONES, TEAM_ENDPOINTS

SCENARIOS: dict[str, dict[str, float]] = {
    "rotating": {"rotating": 0.7, "oncall": 0.15, "dual": 0.15},
    "parttime": {"parttime": 0.5, "sparse": 0.25, "dual": 0.25},
    "remote": {"remote": 0.55, "oncall": 0.15, "sparse": 0.15, "dual": 0.15},
    "mixed": {"rotating": 0.25, "parttime": 0.15, "oncall": 0.1, "remote": 0.2, "dual": 0.15,
              "sparse": 0.15},
}  # fmt: skip
DEFAULT_START = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday


def _kinds(name: str, users: int, rng: np.random.Generator) -> list[str]:
    """``users`` kinds in the scenario's proportions (largest remainder), shuffled."""
    mix = SCENARIOS[name]
    exact = {k: users * share for k, share in mix.items()}
    counts = {k: int(v) for k, v in exact.items()}
    for k in sorted(exact, key=lambda k: counts[k] - exact[k])[: users - sum(counts.values())]:
        counts[k] += 1
    kinds = [k for k in mix for _ in range(counts[k])]
    return [kinds[i] for i in rng.permutation(len(kinds))]


def _people(name: str, users: int, seed: int) -> list[Person]:
    if name not in SCENARIOS:
        raise ValueError(f"unknown workforce scenario {name!r}; known: {sorted(SCENARIOS)}")
    idx = list(SCENARIOS).index(name)
    kinds = _kinds(name, users, np.random.default_rng([seed, 1, idx]))
    return [
        make_person(f"w{i:04d}", kind, np.random.default_rng([seed, 7, idx, i]))
        for i, kind in enumerate(kinds)
    ]


def workforce_roster(name: str, *, users: int = 40, seed: int = 1) -> dict[str, str]:
    """User id -> kind of person (``rotating``, ``parttime``, ...) of a scenario."""
    return {p.user: p.kind for p in _people(name, users, seed)}


def _pick(people: list[Person], n: int, rng: np.random.Generator) -> list[Person]:
    return [people[i] for i in sorted(rng.choice(len(people), min(n, len(people)), replace=False))]


def _benign(people: list[Person], days: int, rng: np.random.Generator) -> list[tuple[str, str]]:
    """Give a few people a benign change each; return (user, description) of each change."""
    out: list[tuple[str, str]] = []
    late = first_incident_day(days) - 2
    taken: set[str] = set()

    def free(kinds: tuple[str, ...], need_phone: bool = False) -> list[Person]:
        return [p for p in people if p.kind in kinds and p.user not in taken
                and (p.phone or not need_phone)]  # fmt: skip

    for p in _pick(free(("dual", "parttime", "sparse"), need_phone=True), 2, rng):
        day = late + int(rng.integers(0, 3))
        p.new_phone = (day, NEW_PHONES[int(rng.integers(len(NEW_PHONES)))])
        taken.add(p.user)
        out.append((p.user, f"new phone from day {day}"))
    anywhere = ("parttime", "oncall", "remote", "dual", "sparse")
    for p in _pick(free(anywhere), 1, rng):
        first = late + int(rng.integers(0, 3))
        p.stay = Stay(first, min(days - 1, first + int(rng.integers(3, 6))), abroad_city(p, rng))
        taken.add(p.user)
        out.append((p.user, f"trip to {p.stay.city.city} days {first}-{p.stay.last}"))
    for p in _pick(free(("remote",)) or free(anywhere), 1, rng):
        first = int(days * 0.6) + int(rng.integers(0, 4))
        p.stay = Stay(first, days - 1, abroad_city(p, rng))
        taken.add(p.user)
        out.append((p.user, f"relocation to {p.stay.city.city} ({p.stay.city.tz}) from {first}"))
    for p in _pick([q for q in free(("rotating",)) if len(q.cycle) == 2], 2, rng):
        new_block = next(b for b in ("night", "early", "late") if b not in p.cycle)
        day = (late // 7 + 1) * 7 if (late // 7 + 1) * 7 < days else late
        p.new_cycle = (day, (new_block,))
        taken.add(p.user)
        out.append((p.user, f"moved to {new_block} shifts from day {day}"))
    by_work = {k: [p for p in people if _work(p) == k and p.user not in taken] for k in
               TEAM_ENDPOINTS}  # fmt: skip
    work, team = max(by_work.items(), key=lambda kv: len(kv[1]))
    day = late + int(rng.integers(0, 3))
    for p in _pick(team, max(2, min(5, len(people) // 8)), rng):
        p.team_endpoint = (day, TEAM_ENDPOINTS[work])
        taken.add(p.user)
        out.append((p.user, f"team adopts {TEAM_ENDPOINTS[work]} from day {day}"))
    return out


def _work(p: Person) -> str:
    return {"rotating": "agent", "dual": "desk", "oncall": "eng", "remote": "eng"}.get(p.kind, "")


def _incidents(
    people: list[Person],
    sessions: dict[str, list[Session]],
    benign: set[str],
    day0: datetime,
    days: int,
    rng: np.random.Generator,
) -> dict[str, tuple[str, list[dict[str, Any]]]]:
    """User -> (kind, events) of one incident per kind, on distinct users without changes."""
    out: dict[str, tuple[str, list[dict[str, Any]]]] = {}
    for kind in KINDS:
        pool = [p for p in people if p.user not in benign and p.user not in out]
        fits = [p for p in pool if eligible(kind, sessions[p.user], day0, days)]
        if not fits:
            raise ValueError(f"no user can carry {kind}; use more users or days")
        victim = fits[int(rng.integers(len(fits)))]
        events = BUILDERS[kind](victim, sessions[victim.user], day0, days, rng)
        out[victim.user] = (kind, events)
    return out


def workforce_scenario(
    name: str, *, users: int = 40, days: int = 28, seed: int = 1, start: datetime | None = None
) -> Shaped:
    """Events (sorted by time, ``_id`` ``wf-<name>-<seed>-<n>``), labels and benign changes of
    the workforce scenario ``name`` over ``days`` days from ``start`` (UTC midnight)."""
    idx = list(SCENARIOS).index(name) if name in SCENARIOS else -1
    people = _people(name, users, seed)
    day0 = (start or DEFAULT_START).astimezone(UTC).replace(hour=0, minute=0, second=0)
    day0 = day0.replace(microsecond=0)
    benign = _benign(people, days, np.random.default_rng([seed, 2, idx]))
    sessions = {p.user: person_sessions(p, day0, days) for p in people}
    incidents = _incidents(
        people, sessions, {u for u, _ in benign}, day0, days, np.random.default_rng([seed, 3, idx])
    )
    render_rng = np.random.default_rng([seed, 4, idx])
    events: list[dict[str, Any]] = []
    labels: dict[str, Any] = {"kinds": {}}
    for p in people:
        keep = sessions[p.user]
        if p.user in incidents:
            kind, bad = incidents[p.user]
            first, last = min(e["timestamp"] for e in bad), max(e["timestamp"] for e in bad)
            lo = datetime.fromisoformat(first.replace("Z", "+00:00")) - timedelta(hours=1)
            hi = datetime.fromisoformat(last.replace("Z", "+00:00")) + timedelta(hours=1)
            keep = [s for s in keep if s.end < lo or s.start > hi]
            events.extend(bad)
            labels[p.user] = [[first, last]]
            labels["kinds"][p.user] = [kind]
        for s in keep:
            events.extend(render_session(s, render_rng))
    events.sort(key=lambda e: (e["timestamp"], e["user_id"]))
    docs = [{"_id": f"wf-{name}-{seed}-{n:07d}", **e} for n, e in enumerate(events)]
    return Shaped(events=docs, labels=labels, benign=benign)
