"""Injected incidents (labeled) and the incident kinds the demo scenario knows.

Each injector returns the malicious events only; their first and last timestamps make the
labeled span. Injected events never carry a label field: detectors must find them unaided.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from workers.engine.demo.activity import (
    MS_PER_HOUR,
    MS_PER_MINUTE,
    RawEvent,
    home_ip,
    is_weekend,
    local_midnight_ms,
    login_event,
    request_event,
    session,
)
from workers.engine.demo.catalog import (
    ATTACKER_DEVICES,
    ENDPOINTS,
    EXFIL_ENDPOINTS,
    FOREIGN_PLACES,
    SENSITIVE_ENDPOINTS,
    Place,
)
from workers.engine.demo.profiles import Profile

INCIDENT_KINDS: tuple[str, ...] = (
    "account_takeover",
    "data_exfiltration",
    "credential_stuffing",
    "off_hours",
    "impossible_travel",
)


class Context:
    """Where in time an injector may act: the scenario start and its late (test) days."""

    def __init__(self, *, start_ms: int, start_weekday: int, late_days: list[int]) -> None:
        self.start_ms = start_ms
        self.start_weekday = start_weekday
        self.late_days = late_days

    def workdays(self) -> list[int]:
        days = [d for d in self.late_days if not is_weekend(self.start_weekday, d)]
        return days or self.late_days

    def weekend_days(self) -> list[int]:
        days = [d for d in self.late_days if is_weekend(self.start_weekday, d)]
        return days or self.late_days


def _pick(rng: np.random.Generator, items: list[int]) -> int:
    return items[int(rng.integers(len(items)))]


def _foreign(rng: np.random.Generator, p: Profile) -> tuple[Place, str]:
    """A foreign place (never the victim's country) and an address there."""
    places = [f for f in FOREIGN_PLACES if f.country != p.place.country]
    place = places[int(rng.integers(len(places)))]
    octet = place.octets[int(rng.integers(len(place.octets)))]
    ip = f"{octet}.{int(rng.integers(1, 255))}.{int(rng.integers(0, 255))}"
    return place, f"{ip}.{int(rng.integers(2, 254))}"


def account_takeover(rng: np.random.Generator, p: Profile, ctx: Context) -> list[RawEvent]:
    """New country and device at 2-4am local, sensitive endpoints, large downloads."""
    day = _pick(rng, ctx.late_days)
    t = local_midnight_ms(ctx.start_ms, day, p.place) + int(rng.uniform(2.0, 4.0) * MS_PER_HOUR)
    place, ip = _foreign(rng, p)
    device = next(d for d in rng.permutation(ATTACKER_DEVICES) if d not in p.devices)
    events = [
        login_event(p.entity, t + i * 20_000, status=401, ip=ip, place=place, device=device)
        for i in range(int(rng.integers(0, 3)))
    ]
    t += len(events) * 20_000
    events.append(login_event(p.entity, t, status=200, ip=ip, place=place, device=device))
    sensitive = list(SENSITIVE_ENDPOINTS)
    for _ in range(int(rng.integers(15, 35))):
        t += int(rng.uniform(20_000, 90_000))
        if rng.random() < 0.8:
            endpoint = sensitive[int(rng.integers(len(sensitive)))]
            medians = SENSITIVE_ENDPOINTS[endpoint]
        else:
            endpoint = p.endpoints[int(rng.integers(len(p.endpoints)))]
            medians = ENDPOINTS[endpoint]
        events.append(
            request_event(
                rng,
                p.entity,
                t,
                endpoint=endpoint,
                medians=medians,
                ip=ip,
                place=place,
                device=device,
                status=200,
            )
        )
    return events


def data_exfiltration(rng: np.random.Generator, p: Profile, ctx: Context) -> list[RawEvent]:
    """During working hours from the user's own device: 1-2 hours of downloads 20-50x normal."""
    day = _pick(rng, ctx.workdays())
    offset_h = p.work_start + rng.uniform(0.5, max(0.6, p.work_hours - 2.5))
    t = local_midnight_ms(ctx.start_ms, day, p.place) + int(offset_h * MS_PER_HOUR)
    end = t + int(rng.uniform(60.0, 120.0) * MS_PER_MINUTE)
    ip, device = home_ip(rng, p), p.devices[0]
    events = [login_event(p.entity, t, status=200, ip=ip, place=p.place, device=device)]
    mean_gap = MS_PER_HOUR / (p.rate_per_hour * rng.uniform(1.5, 3.0))
    while True:
        t += int(rng.exponential(mean_gap)) + 500
        if t >= end:
            break
        endpoint = EXFIL_ENDPOINTS[int(rng.integers(len(EXFIL_ENDPOINTS)))]
        events.append(
            request_event(
                rng,
                p.entity,
                t,
                endpoint=endpoint,
                medians=ENDPOINTS[endpoint],
                ip=ip,
                place=p.place,
                device=device,
                byte_factor=p.byte_scale * rng.uniform(20.0, 50.0),
                latency_factor=p.latency_scale * 1.5,
                status=200,
            )
        )
    return events


def credential_stuffing(rng: np.random.Generator, p: Profile, ctx: Context) -> list[RawEvent]:
    """One or two bursts of failed logins (401) from many foreign addresses within 3 hours."""
    day = _pick(rng, ctx.late_days)
    t = local_midnight_ms(ctx.start_ms, day, p.place) + int(rng.uniform(0.0, 22.0) * MS_PER_HOUR)
    events: list[RawEvent] = []
    for _burst in range(int(rng.integers(1, 3))):
        attempts = int(rng.integers(40, 120))
        span_ms = rng.uniform(10.0, 25.0) * MS_PER_MINUTE
        for ts in np.sort(rng.uniform(t, t + span_ms, size=attempts)).astype(np.int64):
            place, ip = _foreign(rng, p)
            device = "python_requests" if rng.random() < 0.5 else "chrome_windows"
            events.append(
                login_event(p.entity, int(ts), status=401, ip=ip, place=place, device=device)
            )
        t += int(span_ms + rng.uniform(30.0, 90.0) * MS_PER_MINUTE)
    return events


def off_hours(rng: np.random.Generator, p: Profile, ctx: Context) -> list[RawEvent]:
    """The user's own device and network, but at about 3am local on a weekend."""
    day = _pick(rng, ctx.weekend_days())
    t = local_midnight_ms(ctx.start_ms, day, p.place) + int(rng.uniform(2.5, 3.5) * MS_PER_HOUR)
    minutes = rng.uniform(40.0, 90.0)
    return session(rng, p, t, minutes, device=p.devices[0], ip=home_ip(rng, p))


def impossible_travel(rng: np.random.Generator, p: Profile, ctx: Context) -> list[RawEvent]:
    """A login from a far country 15-55 minutes after a login from home (home part unlabeled)."""
    day = _pick(rng, ctx.workdays())
    offset_h = p.work_start + rng.uniform(0.5, max(0.6, p.work_hours - 1.5))
    home_t = local_midnight_ms(ctx.start_ms, day, p.place) + int(offset_h * MS_PER_HOUR)
    home = session(rng, p, home_t, 10.0, device=p.devices[0], ip=home_ip(rng, p))
    for event in home:
        event["benign"] = True  # the user's own session: part of the story, not of the label
    t = home_t + int(rng.uniform(15.0, 55.0) * MS_PER_MINUTE)
    place, ip = _foreign(rng, p)
    device = p.devices[0]
    events = [*home, login_event(p.entity, t, status=200, ip=ip, place=place, device=device)]
    for _ in range(int(rng.integers(3, 10))):
        t += int(rng.uniform(30_000, 120_000))
        endpoint = p.endpoints[int(rng.integers(len(p.endpoints)))]
        events.append(
            request_event(
                rng,
                p.entity,
                t,
                endpoint=endpoint,
                medians=ENDPOINTS[endpoint],
                ip=ip,
                place=place,
                device=device,
                byte_factor=p.byte_scale,
                status=200,
            )
        )
    return events


INJECTORS: dict[str, Callable[[np.random.Generator, Profile, Context], list[RawEvent]]] = {
    "account_takeover": account_takeover,
    "data_exfiltration": data_exfiltration,
    "credential_stuffing": credential_stuffing,
    "off_hours": off_hours,
    "impossible_travel": impossible_travel,
}
