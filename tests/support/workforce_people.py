"""People of the workforce generator: who works when, on which device, from where.

Six kinds of people, each with a rhythm of their own in their own local time:

- ``rotating``: call-centre agents on 8 h shifts whose block changes every week along a personal
  cycle (morning 07-15 / afternoon 13-21 in day-only centres; two or three of early 06-14,
  late 14-22, night 22-06 in 24/7 centres), with fixed days off, at the site's office;
- ``parttime``: 2-3 fixed weekdays, one block (morning, afternoon or evening), from home;
- ``oncall``: weekday engineers who, one week in 3-4, answer short night pages from home;
- ``remote``: contractors working split or late days from home or through 1-2 VPN exits;
- ``dual``: office workers with a desk laptop and a phone used daily (commute, evening);
- ``sparse``: one short session every 2-4 days.

A :class:`Session` is one login and the requests after it; :func:`render_session` turns it
into event documents. Local times become UTC through each day's IANA zone (DST included).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from tests.support.workforce_places import (
    ABROAD,
    CALL_CENTRES,
    ENDPOINTS,
    HOMES,
    LAPTOPS,
    PHONES,
    VPN_EXITS,
    City,
)

Geo = tuple[str, str, str, str, str, str]  # country, region, city, device tz, asn, ip
SHIFT_START = {"early": 6.0, "late": 14.0, "night": 22.0, "morning": 7.0, "afternoon": 13.0}
# local start hour; every shift is 8 h. Day-only centres (07-21) rotate morning/afternoon;
# 24/7 centres rotate two or three of early/late/night.
CYCLES = [
    ("morning", "afternoon"),
    ("late", "night"),
    ("early", "night"),
    ("early", "late", "night"),
]
CYCLE_P = [0.5, 0.2, 0.1, 0.2]
WORK = {"rotating": "agent", "parttime": "hr", "oncall": "eng", "remote": "eng", "dual": "desk",
        "sparse": "hr"}  # fmt: skip
NORMAL_STATUSES = ((200, 0.955), (304, 0.02), (404, 0.015), (500, 0.01))


@dataclass
class Stay:
    """Days ``first..last`` (inclusive) spent in ``city``: a trip or a relocation (long stay)."""

    first: int
    last: int
    city: City


@dataclass
class Person:
    user: str
    kind: str
    city: City
    rng: np.random.Generator
    laptop: str
    phone: str | None
    endpoints: list[str]
    weights: list[float]
    bytes_kb: float
    home_ip: str
    office_ip: str
    cycle: tuple[str, ...] = ()
    phase: int = 0
    days_off: tuple[int, ...] = ()
    workdays: tuple[int, ...] = (0, 1, 2, 3, 4)
    blocks: tuple[tuple[float, float], ...] = ((9.0, 17.0),)
    vpn: list[Geo] = field(default_factory=list)
    oncall_every: int = 0
    sparse_days: set[int] = field(default_factory=set)
    stay: Stay | None = None
    new_phone: tuple[int, str] | None = None
    new_cycle: tuple[int, tuple[str, ...]] | None = None
    team_endpoint: tuple[int, str] | None = None


@dataclass
class Session:
    """One login at ``start`` (UTC) and requests for ``minutes``, one every ~``gap_min``."""

    user: str
    start: datetime
    minutes: float
    agent: str
    geo: Geo
    endpoints: list[str]
    weights: list[float]
    gap_min: float
    bytes_kb: float
    statuses: tuple[tuple[int, float], ...] = NORMAL_STATUSES
    typo_rate: float = 0.03

    @property
    def end(self) -> datetime:
        return self.start + timedelta(minutes=self.minutes)


def ts(moment: datetime) -> str:
    """ISO 8601 UTC with milliseconds and ``Z``."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def local_to_utc(day0: datetime, day: int, hour: float, tz: str) -> datetime:
    """UTC instant of local ``hour`` (may exceed 24) on day ``day`` after ``day0`` in ``tz``."""
    date = (day0 + timedelta(days=day)).date()
    naive = datetime(date.year, date.month, date.day) + timedelta(hours=hour)
    return naive.replace(tzinfo=ZoneInfo(tz)).astimezone(UTC)


def ip_in(prefix: str, rng: np.random.Generator) -> str:
    return f"{prefix}.{int(rng.integers(1, 255))}.{int(rng.integers(2, 254))}"


def make_person(user: str, kind: str, rng: np.random.Generator) -> Person:
    """A person of ``kind`` with their habits drawn from ``rng`` (kept as their own stream)."""
    city = CALL_CENTRES[int(rng.integers(len(CALL_CENTRES)))] if kind == "rotating" else None
    city = city or HOMES[int(rng.integers(len(HOMES)))]
    pool = ENDPOINTS[WORK[kind]]
    chosen = sorted(rng.choice(len(pool), size=int(rng.integers(3, len(pool) + 1)), replace=False))
    has_phone = kind in ("dual", "parttime", "sparse") and (kind == "dual" or rng.random() < 0.5)
    p = Person(
        user=user,
        kind=kind,
        city=city,
        rng=rng,
        laptop=LAPTOPS[0] if kind == "rotating" else LAPTOPS[int(rng.integers(len(LAPTOPS)))],
        phone=PHONES[int(rng.integers(len(PHONES)))] if has_phone else None,
        endpoints=[pool[i] for i in chosen],
        weights=[float(w) for w in rng.dirichlet(np.full(len(chosen), 2.0))],
        bytes_kb=float(rng.uniform(4.0, 60.0)),
        home_ip=ip_in(city.home[1], rng),
        office_ip=ip_in(city.office[1], rng),
    )
    if kind == "rotating":
        p.cycle = CYCLES[int(rng.choice(len(CYCLES), p=CYCLE_P))]
        p.phase = int(rng.integers(len(p.cycle)))
        p.days_off = [(5, 6), (0, 1), (2, 3), (3, 4), (6, 0)][int(rng.integers(5))]
    elif kind == "parttime":
        p.workdays = tuple(sorted(rng.choice(5, size=int(rng.integers(2, 4)), replace=False)))
        p.blocks = [((8.5, 13.0),), ((13.0, 17.5),), ((18.0, 22.0),)][int(rng.integers(3))]
    elif kind == "oncall":
        start = float(rng.uniform(8.5, 10.5))
        p.blocks = ((start, start + 4.0), (start + 4.75, start + 8.5))
        p.oncall_every, p.phase = int(rng.integers(3, 5)), int(rng.integers(4))
    elif kind == "remote":
        p.blocks = [((9.0, 12.0), (15.0, 18.5)), ((12.0, 20.0),), ((6.5, 11.0), (13.0, 15.5))][
            int(rng.integers(3))
        ]
        exits = rng.choice(len(VPN_EXITS), size=int(rng.integers(1, 3)), replace=False)
        p.vpn = [VPN_EXITS[i] for i in exits]
    elif kind == "dual":
        start = float(rng.uniform(7.75, 9.25))
        p.blocks = ((start, start + 4.0), (start + 4.75, start + 8.5))
    else:  # sparse
        first = float(rng.uniform(8.0, 12.0))
        p.blocks = ((first, first + float(rng.uniform(5.0, 9.0))),)
        day = int(rng.integers(0, 3))
        while day < 60:
            p.sparse_days.add(day)
            day += int(rng.integers(2, 5))
    return p


def _jitter(p: Person, hour: float, sd: float = 0.15) -> float:
    return hour + float(p.rng.normal(0.0, sd))


def _day_plan(p: Person, day: int, weekday: int) -> list[tuple[float, float, str, str]]:
    """(local start hour, minutes, device, network) of each session of ``p`` on ``day``."""
    r = p.rng
    if p.kind == "rotating":
        cycle = p.new_cycle[1] if p.new_cycle and day >= p.new_cycle[0] else p.cycle
        if weekday in p.days_off or r.random() < 0.03:
            return []
        start = _jitter(p, SHIFT_START[cycle[(day // 7 + p.phase) % len(cycle)]], 0.1)
        first = float(r.uniform(225, 255))
        return [(start, first, "laptop", "office"), (start + first / 60 + 0.5, 450 - first,
                                                     "laptop", "office")]  # fmt: skip
    if p.kind == "sparse":
        if day not in p.sparse_days:
            return []
        lo, hi = p.blocks[0]
        device = "phone" if p.phone and r.random() < 0.3 else "laptop"
        return [(float(r.uniform(lo, hi)), float(r.uniform(8, 40)), device, "home")]
    off = weekday not in p.workdays if p.kind == "parttime" else weekday >= 5
    if p.kind == "remote":
        off = r.random() > (0.85 if weekday < 5 else 0.12)
    if off or r.random() < 0.04:  # not a working day, or a day off
        plan = []
    else:
        where = {"dual": "office", "oncall": "office"}.get(p.kind, "home")
        plan = [(_jitter(p, lo, 0.3), (hi - lo) * 60 * float(r.uniform(0.85, 1.05)), "laptop",
                 where) for lo, hi in p.blocks]  # fmt: skip
        if p.kind == "remote":
            plan = [(h, m, d, "vpn" if p.vpn and r.random() < 0.5 else w) for h, m, d, w in plan]
    if p.kind == "oncall" and (day // 7 + p.phase) % p.oncall_every == 0 and r.random() < 0.35:
        plan.append((float(r.uniform(0.5, 5.0)), float(r.uniform(10, 40)), "laptop", "ops"))
    if p.phone and weekday < 5 and plan and r.random() < 0.6:
        plan.append((float(r.uniform(7.0, 8.0)), float(r.uniform(5, 15)), "phone", "mobile"))
    if p.phone and (p.kind == "dual" or r.random() < 0.15) and r.random() < 0.8:
        where = "home" if r.random() < 0.5 else "mobile"
        plan.append((float(r.uniform(19.0, 22.5)), float(r.uniform(8, 25)), "phone", where))
    return plan


def person_sessions(p: Person, day0: datetime, days: int) -> list[Session]:
    """Every normal session of ``p`` over ``days`` days from ``day0`` (UTC midnight)."""
    out: list[Session] = []
    stay_ips: dict[str, str] = {}
    for day in range(days):
        city = p.stay.city if p.stay and p.stay.first <= day <= p.stay.last else p.city
        for hour, minutes, device, network in _day_plan(p, day, (day0.weekday() + day) % 7):
            agent = p.laptop if device == "laptop" else p.phone or p.laptop
            if device == "phone" and p.new_phone and day >= p.new_phone[0]:
                agent = p.new_phone[1]
            geo = _geo(p, city, network, stay_ips)
            endpoints, weights = p.endpoints, p.weights
            if network == "ops":
                endpoints, weights = ENDPOINTS["ops"], [0.4, 0.3, 0.2, 0.1]
            elif device == "phone":
                endpoints, weights = ENDPOINTS["phone"], [0.5, 0.35, 0.15]
            elif p.team_endpoint and day >= p.team_endpoint[0]:
                endpoints = [*endpoints, p.team_endpoint[1]]
                weights = [w * 0.85 for w in weights] + [0.15]
            gap = 12.0 if p.kind == "rotating" else 8.0 if device == "laptop" else 3.0
            out.append(
                Session(
                    user=p.user,
                    start=local_to_utc(day0, day, hour, city.tz),
                    minutes=minutes,
                    agent=agent,
                    geo=geo,
                    endpoints=endpoints,
                    weights=weights,
                    gap_min=gap,
                    bytes_kb=p.bytes_kb,
                )
            )
    return out


def _geo(p: Person, city: City, network: str, stay_ips: dict[str, str]) -> Geo:
    place = (city.country, city.region, city.city, city.tz)
    if network == "vpn":  # the exit's place and network; the device keeps its own zone
        country, region, town, _, asn, prefix = p.vpn[int(p.rng.integers(len(p.vpn)))]
        return (country, region, town, city.tz, asn, ip_in(prefix, p.rng))
    if network == "mobile":
        return (*place, city.mobile[0], ip_in(city.mobile[1], p.rng))
    if city is p.city:
        ip = p.office_ip if network == "office" else p.home_ip
        if network != "office" and p.rng.random() < 0.04:  # the ISP hands out a new address
            p.home_ip = ip = ip_in(city.home[1], p.rng)
        return (*place, (city.office if network == "office" else city.home)[0], ip)
    ip = stay_ips.setdefault(city.city, ip_in(city.home[1], p.rng))  # hotel / new flat
    return (*place, city.home[0], ip)


def abroad_city(p: Person, rng: np.random.Generator) -> City:
    """A city abroad for a trip or relocation of ``p`` (another country than home)."""
    options = [c for c in ABROAD if c.country != p.city.country]
    return options[int(rng.integers(len(options)))]


def render_session(s: Session, rng: np.random.Generator) -> list[dict[str, Any]]:
    """The event documents (no ``_id`` yet) of one session: a login, then requests."""
    country, region, city, tz, asn, ip = s.geo
    base = {"user_id": s.user, "user_agent": s.agent, "country": country, "region": region,
            "city": city, "tz": tz, "asn": asn, "ip_address": ip}  # fmt: skip
    events: list[dict[str, Any]] = []
    if rng.random() < s.typo_rate:  # a mistyped password first
        typo = s.start - timedelta(seconds=float(rng.uniform(15, 60)))
        events.append({"timestamp": ts(typo), "type": "login", "status_code": 401, **base})
    events.append({"timestamp": ts(s.start), "type": "login", "status_code": 200, **base})
    codes = [c for c, _ in s.statuses]
    probs = np.array([p for _, p in s.statuses]) / sum(p for _, p in s.statuses)
    weights = np.array(s.weights) / sum(s.weights)
    moment = s.start + timedelta(seconds=float(rng.uniform(5, 60)))
    while moment < s.end:
        events.append(
            {
                "timestamp": ts(moment),
                "type": "request",
                **base,
                "endpoint": s.endpoints[int(rng.choice(len(s.endpoints), p=weights))],
                "status_code": int(codes[int(rng.choice(len(codes), p=probs))]),
                "bytes_sent": int(rng.lognormal(np.log(s.bytes_kb * 1024), 0.6)),
                "latency_ms": round(float(rng.lognormal(np.log(120.0), 0.45)), 1),
            }
        )
        moment += timedelta(minutes=max(0.05, float(rng.exponential(s.gap_min))))
    return events


def with_start(s: Session, start: datetime, **changes: Any) -> Session:
    """A copy of ``s`` starting at ``start`` with ``changes`` applied."""
    return replace(s, start=start, **changes)
