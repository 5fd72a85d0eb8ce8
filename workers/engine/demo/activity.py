"""Normal activity of a demo user: sessions in working hours, a login then requests.

Events are built as plain dicts with an integer ``ts`` (UTC epoch milliseconds) and an ``entity``
key; ``workers.engine.demo_data`` renames and formats them at the end.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from workers.engine.demo.catalog import ENDPOINTS, LOGIN_ENDPOINT, USER_AGENTS, Place
from workers.engine.demo.profiles import Profile

MS_PER_MINUTE = 60_000
MS_PER_HOUR = 60 * MS_PER_MINUTE
MS_PER_DAY = 24 * MS_PER_HOUR

RawEvent = dict[str, Any]

_STATUS_CODES = np.array([200, 304, 404, 403, 500])
_STATUS_PROBS = np.array([0.935, 0.03, 0.025, 0.004, 0.006])


def local_midnight_ms(start_ms: int, day: int, place: Place) -> int:
    """UTC epoch ms of local midnight on day ``day`` of the scenario at ``place``."""
    return start_ms + day * MS_PER_DAY - int(place.utc_offset * MS_PER_HOUR)


def location(place: Place) -> dict[str, str]:
    """The location fields of an event at ``place``."""
    return {"country": place.country, "region": place.region, "city": place.city}


def login_event(
    entity: str, ts: int, *, status: int, ip: str, place: Place, device: str
) -> RawEvent:
    """A login event (status 200 or 401) from ``ip`` at ``place`` with ``device``'s agent."""
    return {
        "entity": entity,
        "ts": ts,
        "type": "login",
        "ip_address": ip,
        **location(place),
        "user_agent": USER_AGENTS[device],
        "endpoint": LOGIN_ENDPOINT,
        "status_code": status,
        "bytes_sent": 850 if status == 200 else 310,
        "latency_ms": 120.0 if status == 200 else 95.0,
    }


def request_event(
    rng: np.random.Generator,
    entity: str,
    ts: int,
    *,
    endpoint: str,
    medians: tuple[float, float],
    ip: str,
    place: Place,
    device: str,
    byte_factor: float = 1.0,
    latency_factor: float = 1.0,
    status: int | None = None,
) -> RawEvent:
    """A request to ``endpoint``; bytes and latency are log-normal around ``medians``."""
    code = int(rng.choice(_STATUS_CODES, p=_STATUS_PROBS)) if status is None else status
    bytes_median, latency_median = medians
    size = bytes_median * byte_factor * float(rng.lognormal(0.0, 0.45))
    latency = latency_median * latency_factor * float(rng.lognormal(0.0, 0.3))
    if code == 304:
        size = 0.0
    elif code >= 400:
        size = float(rng.integers(150, 600))
    if code >= 500:
        latency *= 4.0
    return {
        "entity": entity,
        "ts": ts,
        "type": "request",
        "ip_address": ip,
        **location(place),
        "user_agent": USER_AGENTS[device],
        "endpoint": endpoint,
        "status_code": code,
        "bytes_sent": int(size),
        "latency_ms": round(latency, 1),
    }


def home_ip(rng: np.random.Generator, p: Profile) -> str:
    """An address from the user's own pool in their home /24."""
    return f"{p.ip_prefix}.{p.ip_hosts[int(rng.integers(len(p.ip_hosts)))]}"


def session(
    rng: np.random.Generator,
    p: Profile,
    start: int,
    minutes: float,
    *,
    device: str,
    ip: str,
    allow_failed_login: bool = True,
) -> list[RawEvent]:
    """One session: (maybe a mistyped password,) a login, then Poisson-timed requests."""
    events: list[RawEvent] = []
    if allow_failed_login and rng.random() < p.login_fail_prob:
        failed = start - int(rng.integers(5_000, 40_000))
        events.append(
            login_event(p.entity, failed, status=401, ip=ip, place=p.place, device=device)
        )
    events.append(login_event(p.entity, start, status=200, ip=ip, place=p.place, device=device))
    end = start + int(minutes * MS_PER_MINUTE)
    t = start
    mean_gap_ms = MS_PER_HOUR / p.rate_per_hour
    while True:
        t += int(rng.exponential(mean_gap_ms)) + 500
        if t >= end:
            break
        i = int(rng.choice(len(p.endpoints), p=p.endpoint_weights))
        endpoint = p.endpoints[i]
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
                byte_factor=p.byte_scale,
                latency_factor=p.latency_scale,
            )
        )
    return events


def pick_device(rng: np.random.Generator, p: Profile, day: int) -> str:
    """The device of a session on ``day``; a benign new phone is used from its first day."""
    if p.new_device is not None and day >= p.new_device[1] and rng.random() < 0.4:
        return p.new_device[0]
    return p.devices[int(rng.choice(len(p.devices), p=p.device_weights))]


def is_weekend(start_weekday: int, day: int) -> bool:
    """Whether scenario day ``day`` is a Saturday or Sunday (``start_weekday``: Monday = 0)."""
    return (start_weekday + day) % 7 >= 5


def normal_activity(
    rng: np.random.Generator, p: Profile, *, start_ms: int, start_weekday: int, days: int
) -> list[RawEvent]:
    """All of one user's ordinary sessions over ``days`` days from ``start_ms``."""
    events: list[RawEvent] = []
    for day in range(days):
        midnight = local_midnight_ms(start_ms, day, p.place)
        if is_weekend(start_weekday, day):
            if rng.random() < p.weekend_prob:
                begin = midnight + int(rng.uniform(10.0, 19.0) * MS_PER_HOUR)
                minutes = rng.uniform(15.0, 50.0)
                device = pick_device(rng, p, day)
                events += session(rng, p, begin, minutes, device=device, ip=home_ip(rng, p))
            continue
        if rng.random() < 0.04:  # a day off
            continue
        n_sessions = int(rng.integers(1, 4))
        segment = p.work_hours / n_sessions
        for s in range(n_sessions):
            offset_h = p.work_start + s * segment + rng.uniform(0.0, 0.3 * segment)
            begin = midnight + int(offset_h * MS_PER_HOUR)
            minutes = rng.uniform(0.35, 0.7) * segment * 60.0
            device = pick_device(rng, p, day)
            events += session(rng, p, begin, minutes, device=device, ip=home_ip(rng, p))
    if p.new_device is not None:  # make sure the new phone really shows up on its first day
        device, first_day = p.new_device
        if first_day < days:
            begin = local_midnight_ms(start_ms, first_day, p.place) + int(
                (p.work_start + 0.5 * p.work_hours) * MS_PER_HOUR
            )
            events += session(
                rng, p, begin, 25.0, device=device, ip=home_ip(rng, p), allow_failed_login=False
            )
    return events
