"""User profiles of the scenarios and their normal activity (sessions in local working windows).

A profile says *where* (home city, ISP network, IP), *with what* (devices), *when* (local hour
windows and weekdays, probability of an active day) and *how much* (sessions per active day,
requests per session). Benign changes (a switched device, trips, an earlier start) are part of the
profile, so normal activity already contains them; their events carry ``benign`` for bookkeeping.
Events are dicts with integer ``ts`` (UTC epoch ms) and ``entity``, as in the demo's raw events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workers.engine.demo.catalog import (
    DESKTOP_DEVICES,
    ENDPOINTS,
    LOGIN_ENDPOINT,
    PHONE_DEVICES,
    USER_AGENTS,
)
from workers.engine.scenarios.sites import (
    CITIES,
    MS_PER_DAY,
    MS_PER_HOUR,
    MS_PER_MINUTE,
    City,
    local_midnight_ms,
    utc_offset_minutes,
)

RawEvent = dict[str, Any]
WEEKDAYS = frozenset(range(5))
WEEKEND = frozenset({5, 6})


@dataclass(frozen=True)
class Site:
    """Where a session comes from: a city, its network (ASN) and an IP address."""

    city: City
    asn: str
    ip: str


@dataclass(frozen=True)
class Trip:
    """Days ``[first, last]`` spent at ``site`` (benign when ``benign``; history trips are not)."""

    site: Site
    first: int
    last: int
    benign: bool


@dataclass
class Person:
    """A user's habits; see the module docstring."""

    entity: str
    kind: str  # sparse | office | night | weekend | split | traveller
    home: Site
    devices: list[str]
    endpoints: list[str]
    windows: list[tuple[float, float]]  # local start-hour windows; > 24 means after midnight
    weekdays: frozenset[int]
    p_day: float  # chance of activity on one of ``weekdays``
    p_other: float  # chance of activity on any other day
    sessions: tuple[int, int]
    requests: tuple[int, int]  # per session
    session_min: float  # a session's requests fall within this many minutes of its login
    byte_scale: float
    write_offset: bool  # events carry utc_offset_minutes besides tz
    new_device: tuple[str, int] | None = None  # benign: used for every login from this day on
    trips: list[Trip] = field(default_factory=list)
    earlier_from: int | None = None  # benign: windows start an hour earlier from this day on


def make_site(rng: np.random.Generator, city: City, asn: str | None = None) -> Site:
    """A site in ``city`` with one of its networks (or ``asn``) and a fixed IP address."""
    network = asn if asn is not None else city.asns[int(rng.integers(len(city.asns)))]
    octet = city.octets[int(rng.integers(len(city.octets)))]
    ip = f"{octet}.{rng.integers(1, 255)}.{rng.integers(0, 255)}.{rng.integers(2, 254)}"
    return Site(city, network, ip)


_KIND_HABITS: dict[str, dict[str, Any]] = {
    "sparse": {"sessions": (1, 2), "requests": (0, 6), "session_min": 20.0},
    "office": {"sessions": (3, 6), "requests": (3, 10), "session_min": 60.0},
    "traveller": {"sessions": (2, 5), "requests": (2, 9), "session_min": 45.0},
    "night": {"sessions": (2, 4), "requests": (2, 8), "session_min": 40.0},
    "weekend": {"sessions": (2, 4), "requests": (1, 8), "session_min": 40.0},
    "split": {"sessions": (2, 4), "requests": (1, 7), "session_min": 30.0},
}


def _windows(rng: np.random.Generator, kind: str) -> list[tuple[float, float]]:
    if kind == "sparse":
        first = float(rng.uniform(7.5, 16.0))
        out = [(first, first + float(rng.uniform(1.0, 2.5)))]
        if rng.random() < 0.5:
            second = float(rng.uniform(max(first + 3.0, 12.0), 19.0))
            out.append((second, second + 1.5))
        return out
    if kind == "night":
        start = float(rng.uniform(21.5, 23.0))
        return [(start, start + float(rng.uniform(6.5, 7.5)))]  # ends around 05:00-06:00
    if kind == "split":
        morning = float(rng.uniform(5.5, 7.5))
        evening = float(rng.uniform(16.5, 18.5))
        return [(morning, morning + 3.0), (evening, evening + 3.5)]
    if kind == "weekend":
        start = float(rng.uniform(8.0, 11.0))
        return [(start, start + 9.0)]
    start = float(rng.uniform(7.5, 9.5))
    return [(start, start + 3.5), (start + 4.5, start + 9.0)]


def make_person(
    rng: np.random.Generator, index: int, kind: str, cities: tuple[City, ...] = CITIES
) -> Person:
    """A seeded user ``user<index>`` of ``kind`` living in one of ``cities``."""
    city = cities[int(rng.integers(len(cities)))]
    devices = [DESKTOP_DEVICES[int(rng.integers(len(DESKTOP_DEVICES)))]]
    if rng.random() < 0.45:
        devices.append(PHONE_DEVICES[int(rng.integers(len(PHONE_DEVICES)))])
    names = list(ENDPOINTS)
    n_endpoints = int(rng.integers(2, 6)) if kind == "sparse" else int(rng.integers(4, 9))
    endpoints = [names[int(i)] for i in rng.choice(len(names), n_endpoints, replace=False)]
    habits = _KIND_HABITS[kind]
    weekdays = WEEKEND if kind == "weekend" else WEEKDAYS
    p_day = float(rng.uniform(0.45, 0.85)) if kind == "sparse" else float(rng.uniform(0.85, 0.98))
    return Person(
        entity=f"user{index:04d}",
        kind=kind,
        home=make_site(rng, city),
        devices=devices,
        endpoints=endpoints,
        windows=_windows(rng, kind),
        weekdays=weekdays,
        p_day=p_day,
        p_other=float(rng.uniform(0.0, 0.08)),
        sessions=habits["sessions"],
        requests=habits["requests"],
        session_min=habits["session_min"],
        byte_scale=float(rng.lognormal(0.0, 0.5)),
        write_offset=bool(rng.random() < 0.5),
    )


def site_on(person: Person, day: int) -> tuple[Site, Trip | None]:
    """Where ``person`` is on scenario day ``day``, and the trip that puts them there if any."""
    for trip in person.trips:
        if trip.first <= day <= trip.last:
            return trip.site, trip
    return person.home, None


def device_on(rng: np.random.Generator, person: Person, day: int) -> tuple[str, bool]:
    """The device of one session on ``day``; True when it is the benign new device."""
    if person.new_device is not None and day >= person.new_device[1]:
        return person.new_device[0], True
    primary = 0.8 if len(person.devices) > 1 else 1.0
    if rng.random() < primary:
        return person.devices[0], False
    return person.devices[int(rng.integers(1, len(person.devices)))], False


def base_event(person: Person, ts: int, site: Site, device: str) -> RawEvent:
    """Fields every event of ``person`` at ``site`` with ``device`` shares."""
    event: RawEvent = {
        "entity": person.entity,
        "ts": ts,
        "ip_address": site.ip,
        "country": site.city.country,
        "region": site.city.region,
        "city": site.city.city,
        "asn": site.asn,
        "user_agent": USER_AGENTS[device],
        "tz": site.city.tz,
    }
    if person.write_offset:
        event["utc_offset_minutes"] = utc_offset_minutes(ts, site.city.tz)
    return event


def login(person: Person, ts: int, site: Site, device: str, status: int = 200) -> RawEvent:
    """A login event (status 200, or 401/403 for a failure)."""
    ok = status == 200
    return {
        **base_event(person, ts, site, device),
        "type": "login",
        "endpoint": LOGIN_ENDPOINT,
        "status_code": status,
        "bytes_sent": 910 if ok else 290,
        "latency_ms": 110.0 if ok else 85.0,
    }


def request(
    rng: np.random.Generator,
    person: Person,
    ts: int,
    site: Site,
    device: str,
    endpoint: str,
    *,
    byte_factor: float = 1.0,
    status: int | None = None,
) -> RawEvent:
    """A request to ``endpoint``; bytes and latency log-normal around the endpoint's medians."""
    bytes_median, latency_median = ENDPOINTS.get(endpoint, (20_000.0, 200.0))
    if status is None:
        draw = rng.random()
        status = 200 if draw < 0.95 else 304 if draw < 0.975 else 404 if draw < 0.994 else 500
    size = bytes_median * person.byte_scale * byte_factor * float(rng.lognormal(0.0, 0.4))
    if status == 304:
        size = 0.0
    elif status >= 400:
        size = float(rng.integers(120, 700))
    return {
        **base_event(person, ts, site, device),
        "type": "request",
        "endpoint": endpoint,
        "status_code": status,
        "bytes_sent": int(size),
        "latency_ms": round(latency_median * float(rng.lognormal(0.0, 0.35)), 1),
    }


def session(
    rng: np.random.Generator,
    person: Person,
    ts: int,
    site: Site,
    device: str,
    *,
    n_requests: int,
    endpoints: list[str] | None = None,
    byte_factor: float = 1.0,
) -> list[RawEvent]:
    """A login at ``ts`` then ``n_requests`` requests within the person's session length."""
    pool = endpoints or person.endpoints
    events = [login(person, ts, site, device)]
    offsets = np.sort(rng.uniform(5_000, person.session_min * MS_PER_MINUTE, n_requests))
    for offset in offsets:
        endpoint = pool[int(rng.integers(len(pool)))]
        events.append(
            request(rng, person, ts + int(offset), site, device, endpoint, byte_factor=byte_factor)
        )
    return events


def normal_activity(
    rng: np.random.Generator, person: Person, *, start_ms: int, start_weekday: int, days: int
) -> list[RawEvent]:
    """The person's ordinary sessions over ``days`` days, benign changes included."""
    out: list[RawEvent] = []
    for day in range(days):
        site, trip = site_on(person, day)
        weekday = (start_weekday + day) % 7
        chance = person.p_day if weekday in person.weekdays else person.p_other
        if trip is not None:
            chance = max(chance, 0.7)  # business trips are working days
        if rng.random() >= chance:
            continue
        midnight = local_midnight_ms(start_ms, day, site.city.tz)
        shift = -1.0 if person.earlier_from is not None and day >= person.earlier_from else 0.0
        n_sessions = int(rng.integers(person.sessions[0], person.sessions[1] + 1))
        for _ in range(n_sessions):
            lo, hi = person.windows[int(rng.integers(len(person.windows)))]
            hour = float(rng.uniform(lo, hi)) + shift
            ts = midnight + int(hour * MS_PER_HOUR) + int(rng.integers(0, 1000))
            device, new_device = device_on(rng, person, day)
            if trip is not None and rng.random() < 0.8:
                device = person.devices[0]  # the laptop travels along
            if rng.random() < 0.03:  # a mistyped password first
                out.append(login(person, ts - int(rng.integers(10_000, 60_000)), site, device, 401))
            n = int(rng.integers(person.requests[0], person.requests[1] + 1))
            events = session(rng, person, ts, site, device, n_requests=n)
            benign = _benign_kind(trip, new_device, shift)
            if benign:
                for event in events:
                    event["benign"] = benign
            out += events
    return out


def _benign_kind(trip: Trip | None, new_device: bool, shift: float) -> str:
    if trip is not None and trip.benign:
        return "trip"
    if new_device:
        return "new_device"
    if shift:
        return "earlier_start"
    return ""


def day_start_ms(start_ms: int, day: int) -> int:
    """UTC epoch ms of scenario day ``day``'s UTC midnight."""
    return start_ms + day * MS_PER_DAY
