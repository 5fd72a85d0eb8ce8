"""Populations of the user scenarios: kinds of users, benign changes and incidents."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from workers.engine.demo.catalog import DESKTOP_DEVICES, PHONE_DEVICES
from workers.engine.scenarios.attacks import INJECTORS, USER_INCIDENT_KINDS, Span
from workers.engine.scenarios.people import (
    Person,
    RawEvent,
    Trip,
    make_person,
    make_site,
    normal_activity,
)
from workers.engine.scenarios.sites import CITIES, TRAVEL_ASNS

INCIDENT_SHARE = 0.15  # share of users with one labeled incident
BENIGN_SHARE = 0.10  # share of users with one benign change in the scoring period
LATE_SHARE = 0.25  # incidents and benign changes fall in this last share of days

_PROFILE, _ACTIVITY, _INCIDENT, _PLAN = 0, 1, 2, 3


@dataclass(frozen=True)
class Mix:
    """Shares of user kinds (summing to 1) and the benign change kinds of a scenario."""

    kinds: dict[str, float]
    benign: tuple[str, ...]
    benign_share: float = BENIGN_SHARE


USER_MIXES: dict[str, Mix] = {
    "sparse": Mix({"sparse": 0.7, "office": 0.3}, ("new_device", "trip", "earlier_start")),
    "shifts": Mix(
        {"night": 0.3, "weekend": 0.2, "split": 0.2, "office": 0.3}, ("earlier_start", "new_device")
    ),
    "travel": Mix({"traveller": 0.5, "office": 0.3, "sparse": 0.2}, ("trip",), 0.2),
    "devices": Mix({"office": 0.6, "sparse": 0.4}, ("new_device",)),
    "mixed": Mix(
        {
            "sparse": 0.45,
            "office": 0.2,
            "night": 0.1,
            "weekend": 0.05,
            "split": 0.05,
            "traveller": 0.15,
        },
        ("new_device", "trip", "earlier_start"),
    ),
}


def _rng(seed: int, index: int, purpose: int) -> np.random.Generator:
    return np.random.default_rng([seed, index, purpose, 1212])


def _kinds(users: int, mix: Mix, rng: np.random.Generator) -> list[str]:
    """Exactly ``round(share * users)`` users of each kind, in a seeded order."""
    names = list(mix.kinds)
    counts = [math.floor(mix.kinds[n] * users) for n in names]
    for n in np.argsort([-(mix.kinds[k] * users % 1) for k in names])[: users - sum(counts)]:
        counts[int(n)] += 1
    kinds = [name for name, count in zip(names, counts, strict=True) for _ in range(count)]
    return [kinds[int(i)] for i in rng.permutation(users)]


def _trip(rng: np.random.Generator, person: Person, first: int, *, benign: bool) -> Trip:
    cities = [c for c in CITIES if c.country != person.home.city.country]
    city = cities[int(rng.integers(len(cities)))]
    asn = TRAVEL_ASNS[int(rng.integers(len(TRAVEL_ASNS)))] if rng.random() < 0.7 else None
    return Trip(make_site(rng, city, asn), first, first + int(rng.integers(2, 5)), benign)


def _history_trips(rng: np.random.Generator, person: Person, first_late: int) -> None:
    """A frequent traveller's earlier trips: several countries, hotel and airport networks."""
    day = int(rng.integers(0, 4))
    while day < first_late - 3:
        trip = _trip(rng, person, day, benign=False)
        person.trips.append(Trip(trip.site, trip.first, min(trip.last, first_late - 1), False))
        day = trip.last + int(rng.integers(3, 8))


def _benign_change(rng: np.random.Generator, person: Person, kind: str, late: list[int]) -> None:
    day = late[int(rng.integers(0, max(1, len(late) - 2)))]
    if kind == "new_device":
        pool = [d for d in (*PHONE_DEVICES, *DESKTOP_DEVICES) if d not in person.devices]
        person.new_device = (pool[int(rng.integers(len(pool)))], day)
    elif kind == "trip":
        person.trips.append(_trip(rng, person, day, benign=True))
    else:
        person.earlier_from = day


def user_population(
    name: str, users: int, seed: int, span: Span
) -> tuple[list[RawEvent], list[tuple[str, str]]]:
    """Raw events of scenario ``name`` and, per injected incident, (entity, kind).

    Incident events carry ``incident`` (the index into the returned list); benign-change events
    carry ``benign`` (the change kind).
    """
    mix = USER_MIXES[name]
    plan = _rng(seed, users, _PLAN)
    kinds = _kinds(users, mix, plan)
    order = [int(i) for i in plan.permutation(users)]
    n_incidents = min(users, max(len(USER_INCIDENT_KINDS), round(users * INCIDENT_SHARE)))
    n_benign = min(users - n_incidents, max(len(mix.benign), round(users * mix.benign_share)))
    incident_of = {u: USER_INCIDENT_KINDS[i % 5] for i, u in enumerate(order[:n_incidents])}
    benign_of = {
        u: mix.benign[i % len(mix.benign)]
        for i, u in enumerate(order[n_incidents : n_incidents + n_benign])
    }
    late = list(span.late_days)
    raw: list[RawEvent] = []
    incidents: list[tuple[str, str]] = []
    for index in range(users):
        person = make_person(_rng(seed, index, _PROFILE), index, kinds[index])
        if person.kind == "traveller":
            _history_trips(_rng(seed, index, _PLAN), person, late[0])
        if index in benign_of:
            _benign_change(_rng(seed, index, _PLAN), person, benign_of[index], late)
        raw += normal_activity(
            _rng(seed, index, _ACTIVITY),
            person,
            start_ms=span.start_ms,
            start_weekday=span.start_weekday,
            days=span.days,
        )
        if index in incident_of:
            injected = INJECTORS[incident_of[index]](_rng(seed, index, _INCIDENT), person, span)
            for event in injected:
                event.pop("benign", None)
                event["incident"] = len(incidents)
            incidents.append((person.entity, incident_of[index]))
            raw += injected
    return raw, incidents
