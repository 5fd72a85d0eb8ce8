"""Incident injectors of the user scenarios; every event they return belongs to the incident.

Shapes and intensities deliberately differ from the demo's injectors: each kind draws an
intensity, and some draws are subtle (an exfiltration at 5x the user's bytes, 8 failed logins).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from workers.engine.demo.catalog import ATTACKER_DEVICES, ENDPOINTS, SENSITIVE_ENDPOINTS
from workers.engine.scenarios.people import (
    Person,
    RawEvent,
    Site,
    login,
    make_site,
    request,
    session,
    site_on,
)
from workers.engine.scenarios.sites import (
    ATTACKER_CITIES,
    CITIES,
    MS_PER_HOUR,
    MS_PER_MINUTE,
    local_midnight_ms,
)

USER_INCIDENT_KINDS: tuple[str, ...] = (
    "account_takeover",
    "data_exfiltration",
    "credential_stuffing",
    "off_hours",
    "impossible_travel",
)


@dataclass(frozen=True)
class Span:
    """The scenario's time frame: start (UTC epoch ms of day 0), weekday of day 0, late days."""

    start_ms: int
    start_weekday: int
    days: int
    late_days: tuple[int, ...]


def _home_day(rng: np.random.Generator, person: Person, span: Span) -> int:
    """A late day on which ``person`` is at home (any late day if none is)."""
    home = [d for d in span.late_days if site_on(person, d)[1] is None]
    pool = home or list(span.late_days)
    return pool[int(rng.integers(len(pool)))]


def _work_ts(rng: np.random.Generator, person: Person, span: Span, day: int) -> int:
    lo, hi = person.windows[int(rng.integers(len(person.windows)))]
    midnight = local_midnight_ms(span.start_ms, day, person.home.city.tz)
    return midnight + int(float(rng.uniform(lo, hi)) * MS_PER_HOUR)


def _foreign(rng: np.random.Generator, person: Person) -> Site:
    cities = [c for c in ATTACKER_CITIES if c.country != person.home.city.country]
    return make_site(rng, cities[int(rng.integers(len(cities)))])


def account_takeover(rng: np.random.Generator, person: Person, span: Span) -> list[RawEvent]:
    """A login from a new country, network and device, then unusual and sensitive requests."""
    day = _home_day(rng, person, span)
    site = _foreign(rng, person)
    device = next(d for d in ATTACKER_DEVICES if d not in person.devices)
    ts = local_midnight_ms(span.start_ms, day, site.city.tz) + int(rng.uniform(1, 23) * MS_PER_HOUR)
    events = [
        login(person, ts - (k + 1) * 40_000, site, device, 401) for k in range(rng.integers(0, 3))
    ]
    events.append(login(person, ts, site, device))
    sensitive = list(SENSITIVE_ENDPOINTS)
    n = int(rng.choice([4, 10, 25]))  # from quiet reconnaissance to a full sweep
    for offset in np.sort(rng.uniform(20_000, 30 * MS_PER_MINUTE, n)):
        endpoint = (
            sensitive[int(rng.integers(len(sensitive)))]
            if rng.random() < 0.5
            else (person.endpoints[int(rng.integers(len(person.endpoints)))])
        )
        events.append(request(rng, person, ts + int(offset), site, device, endpoint, status=200))
    return events


def data_exfiltration(rng: np.random.Generator, person: Person, span: Span) -> list[RawEvent]:
    """From the usual device and place: many endpoints, bytes 5x-40x the user's usual size."""
    day = _home_day(rng, person, span)
    ts = _work_ts(rng, person, span, day)
    factor = float(rng.choice([5.0, 12.0, 40.0]))
    pool = sorted(set(ENDPOINTS) - {"/dashboard"})
    n = int(rng.integers(12, 45))
    return session(
        rng,
        person,
        ts,
        person.home,
        person.devices[0],
        n_requests=n,
        endpoints=pool,
        byte_factor=factor,
    )


def credential_stuffing(rng: np.random.Generator, person: Person, span: Span) -> list[RawEvent]:
    """One to three bursts of failed logins (401/403) from rotating foreign addresses."""
    day = _home_day(rng, person, span)
    events: list[RawEvent] = []
    ts = local_midnight_ms(span.start_ms, day, "UTC") + int(rng.uniform(0, 20) * MS_PER_HOUR)
    for _ in range(int(rng.integers(1, 4))):
        n = int(rng.choice([8, 25, 80]))
        for k in range(n):
            site = _foreign(rng, person)
            status = 401 if rng.random() < 0.8 else 403
            at = ts + k * int(rng.integers(2_000, 30_000))
            events.append(login(person, at, site, "python_requests", status))
        ts += int(rng.uniform(1, 3) * MS_PER_HOUR)
    return events


def _far_hour(person: Person) -> float:
    """A local hour as far as possible from every working window of ``person``."""
    worked = [h % 24 for lo, hi in person.windows for h in np.arange(lo, hi + 0.01, 0.5)]

    def distance(hour: float) -> float:
        return min(min(abs(hour - w), 24 - abs(hour - w)) for w in worked)

    return max(np.arange(0.0, 24.0, 0.5), key=distance)


def off_hours(rng: np.random.Generator, person: Person, span: Span) -> list[RawEvent]:
    """One or two ordinary sessions at an hour the user never works, usual device and place."""
    day = _home_day(rng, person, span)
    midnight = local_midnight_ms(span.start_ms, day, person.home.city.tz)
    hour = _far_hour(person)
    events: list[RawEvent] = []
    for k in range(int(rng.integers(1, 3))):
        ts = midnight + int((hour + k * 0.5 + float(rng.uniform(0, 0.3))) * MS_PER_HOUR)
        n = int(rng.integers(person.requests[0] + 1, person.requests[1] + 3))
        events += session(rng, person, ts, person.home, person.devices[0], n_requests=n)
    return events


def impossible_travel(rng: np.random.Generator, person: Person, span: Span) -> list[RawEvent]:
    """A login at home, then within an hour a login (and requests) from a far country."""
    day = _home_day(rng, person, span)
    ts = _work_ts(rng, person, span, day)
    home_side = session(rng, person, ts, person.home, person.devices[0], n_requests=1)
    far = [
        c
        for c in CITIES + ATTACKER_CITIES
        if c.tz.split("/")[0] != person.home.city.tz.split("/")[0]
    ]
    site = make_site(rng, far[int(rng.integers(len(far)))])
    device = person.devices[0] if rng.random() < 0.5 else "chrome_android"
    later = ts + int(rng.uniform(10, 55) * MS_PER_MINUTE)
    return home_side + session(rng, person, later, site, device, n_requests=int(rng.integers(1, 5)))


INJECTORS: dict[str, Callable[[np.random.Generator, Person, Span], list[RawEvent]]] = {
    "account_takeover": account_takeover,
    "data_exfiltration": data_exfiltration,
    "credential_stuffing": credential_stuffing,
    "off_hours": off_hours,
    "impossible_travel": impossible_travel,
}
