"""Labeled incidents of the workforce generator, one per kind, in the last quarter.

- ``account_takeover``: a login from a new country, a new device and a new ASN, then requests
  touching the account's settings;
- ``credential_stuffing``: a burst of failed (401) logins from rented servers;
- ``data_exfiltration``: about an hour of large downloads from the user's own device and place,
  in a slot where they usually work;
- ``off_hours``: a session from the usual device and place in the middle of the longest stretch
  of the local day the user is never active in (over the whole period, all days and rotations),
  so at least ~4 h from anything they do;
- ``impossible_travel``: a short login at home, then within the hour a login from a far country;
- ``endpoint_scanning``: a burst of requests to endpoints the user never used, mostly 403/404.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from tests.support.workforce_people import (
    Person,
    Session,
    ip_in,
    local_to_utc,
    render_session,
    ts,
    with_start,
)
from tests.support.workforce_places import (
    ATTACKER_AGENTS,
    EXFIL_ENDPOINTS,
    HOSTILE,
    HOSTING,
    SCAN_ENDPOINTS,
    STUFFING_AGENTS,
)

KINDS = (
    "off_hours",
    "data_exfiltration",
    "endpoint_scanning",
    "impossible_travel",
    "account_takeover",
    "credential_stuffing",
)
LAST_QUARTER = 0.75
MIN_FREE_MINUTES = 540  # an off-hours session sits mid-gap: >= 4 h from activity either side
Events = list[dict[str, Any]]


def first_incident_day(days: int) -> int:
    """The first day index incidents may fall on: after ``LAST_QUARTER`` of the period."""
    return int(np.ceil(days * LAST_QUARTER)) + 1 if days >= 8 else days - 1


def free_stretch(sessions: list[Session]) -> tuple[float, int]:
    """(local minute of day at the middle, length in minutes) of the longest stretch of the
    local day in which no session of ``sessions`` is active (in each session's device zone)."""
    busy = np.zeros(1440, dtype=bool)
    for s in sessions:
        local = s.start.astimezone(ZoneInfo(s.geo[3]))
        first = local.hour * 60 + local.minute
        busy[np.arange(first, first + int(s.minutes) + 2) % 1440] = True
    if not busy.any():
        return 0.0, 1440
    doubled = np.concatenate([busy, busy])
    best, best_end, run = 0, 0, 0
    for i, b in enumerate(doubled):
        run = 0 if b else run + 1
        if run > best:
            best, best_end = run, i
    best = min(best, 1440)
    return float((best_end - best / 2) % 1440), best


def _late(sessions: list[Session], day0: Any, days: int, min_minutes: float) -> list[Session]:
    """Sessions starting on an incident day, at least ``min_minutes`` long, on a laptop."""
    start = day0 + timedelta(days=first_incident_day(days))
    end = day0 + timedelta(days=days)
    return [
        s
        for s in sessions
        if start <= s.start < end and s.minutes >= min_minutes and "Mobile" not in s.agent
    ]


def _far(p: Person, rng: np.random.Generator) -> tuple[str, ...]:
    """A hostile origin at least 4 h of UTC offset away from ``p``'s home."""
    options = [h for h in HOSTILE if h[0] != p.city.country and _offset_gap(h[3], p.city.tz) >= 4]
    options = options or [h for h in HOSTILE if h[0] != p.city.country]
    return options[int(rng.integers(len(options)))]


def _offset_gap(tz_a: str, tz_b: str) -> float:
    """Hours between the UTC offsets of two zones (mid-January), at most 12."""
    moment = datetime(2026, 1, 15, tzinfo=UTC)
    a = moment.astimezone(ZoneInfo(tz_a)).utcoffset() or timedelta()
    b = moment.astimezone(ZoneInfo(tz_b)).utcoffset() or timedelta()
    gap = abs((a - b).total_seconds()) / 3600
    return min(gap, 24 - gap)


def _random_moment(day0: Any, days: int, rng: np.random.Generator) -> Any:
    day = int(rng.integers(first_incident_day(days), days))
    return day0 + timedelta(days=day, hours=float(rng.uniform(0, 23.5)))


def off_hours(p: Person, own: list[Session], day0: Any, days: int, rng: Any) -> Events:
    middle, _ = free_stretch(own)
    usual = [s for s in own if "Mobile" not in s.agent] or own
    model = usual[int(rng.integers(len(usual)))]
    minutes = float(rng.uniform(20, 35))
    day = int(rng.integers(first_incident_day(days), days))
    start = local_to_utc(day0, day, (middle - minutes / 2) / 60, model.geo[3])
    return render_session(with_start(model, start, minutes=minutes, typo_rate=0.0), rng)


def data_exfiltration(p: Person, own: list[Session], day0: Any, days: int, rng: Any) -> Events:
    slots = _late(own, day0, days, 30)
    slot = slots[int(rng.integers(len(slots)))]
    exfil = with_start(
        slot,
        slot.start,
        minutes=float(rng.uniform(50, 70)),
        endpoints=EXFIL_ENDPOINTS,
        weights=[1.0] * len(EXFIL_ENDPOINTS),
        gap_min=0.3,
        bytes_kb=float(rng.uniform(8_000, 30_000)),
        typo_rate=0.0,
    )
    return render_session(exfil, rng)


def endpoint_scanning(p: Person, own: list[Session], day0: Any, days: int, rng: Any) -> Events:
    slots = _late(own, day0, days, 10)
    slot = slots[int(rng.integers(len(slots)))]
    scan = with_start(
        slot,
        slot.start,
        minutes=float(rng.uniform(10, 25)),
        endpoints=SCAN_ENDPOINTS,
        weights=[1.0] * len(SCAN_ENDPOINTS),
        gap_min=0.15,
        statuses=((403, 0.45), (404, 0.45), (401, 0.07), (200, 0.03)),
        typo_rate=0.0,
    )
    return render_session(scan, rng)


def impossible_travel(p: Person, own: list[Session], day0: Any, days: int, rng: Any) -> Events:
    slots = _late(own, day0, days, 10)
    slot = slots[int(rng.integers(len(slots)))]
    home = with_start(slot, slot.start, minutes=float(rng.uniform(5, 12)), typo_rate=0.0)
    country, region, city, tz, asn, prefix = _far(p, rng)
    away = with_start(
        slot,
        slot.start + timedelta(minutes=float(rng.uniform(20, 50))),
        minutes=float(rng.uniform(10, 20)),
        geo=(country, region, city, tz, asn, ip_in(prefix, rng)),
        gap_min=2.0,
        typo_rate=0.0,
    )
    return render_session(home, rng) + render_session(away, rng)


def account_takeover(p: Person, own: list[Session], day0: Any, days: int, rng: Any) -> Events:
    country, region, city, tz, asn, prefix = _far(p, rng)
    extra = ["/account/mfa", "/account/email", "/account/sessions"]
    takeover = Session(
        user=p.user,
        start=_random_moment(day0, days, rng),
        minutes=float(rng.uniform(15, 35)),
        agent=ATTACKER_AGENTS[int(rng.integers(len(ATTACKER_AGENTS)))],
        geo=(country, region, city, tz, asn, ip_in(prefix, rng)),
        endpoints=p.endpoints + extra,
        weights=p.weights + [0.3] * len(extra),
        gap_min=1.5,
        bytes_kb=p.bytes_kb * 2,
        typo_rate=0.0,
    )
    return render_session(takeover, rng)


def credential_stuffing(p: Person, own: list[Session], day0: Any, days: int, rng: Any) -> Events:
    country, region, city, tz, asn, prefix = HOSTING[int(rng.integers(len(HOSTING)))]
    agent = STUFFING_AGENTS[int(rng.integers(len(STUFFING_AGENTS)))]
    ips = [ip_in(prefix, rng) for _ in range(int(rng.integers(4, 12)))]
    start = _random_moment(day0, days, rng)
    offsets = np.sort(rng.uniform(0, float(rng.uniform(8, 20)) * 60, int(rng.integers(40, 90))))
    base = {"user_id": p.user, "user_agent": agent, "country": country, "region": region,
            "city": city, "tz": tz, "asn": asn}  # fmt: skip
    return [
        {
            "timestamp": ts(start + timedelta(seconds=float(o))),
            "type": "login",
            "status_code": 401,
            **base,
            "ip_address": ips[int(rng.integers(len(ips)))],
        }
        for o in offsets
    ]


BUILDERS: dict[str, Callable[[Person, list[Session], Any, int, Any], Events]] = {
    "off_hours": off_hours,
    "data_exfiltration": data_exfiltration,
    "endpoint_scanning": endpoint_scanning,
    "impossible_travel": impossible_travel,
    "account_takeover": account_takeover,
    "credential_stuffing": credential_stuffing,
}


def eligible(kind: str, own: list[Session], day0: Any, days: int) -> bool:
    """Whether a person with sessions ``own`` can carry an incident of ``kind``."""
    if kind == "off_hours":
        return bool(own) and free_stretch(own)[1] >= MIN_FREE_MINUTES
    need = {"data_exfiltration": 30.0, "endpoint_scanning": 10.0, "impossible_travel": 10.0}
    return kind not in need or bool(_late(own, day0, days, need[kind]))
