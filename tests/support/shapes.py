"""A second, independent scenario generator for detection quality tests.

Written apart from the demo generator (and from `workers.engine.scenarios`) so that quality
floors are not measured on one generator's idea of behaviour. Users carry IANA time zones and
their own rhythm: ``sparse`` (0-2 short sessions a day), ``office``, ``night`` (22:00-06:00
local), ``weekend`` (Saturday/Sunday only) and ``traveller`` (trips abroad in history). Labeled
incidents fall in the last quarter; benign novelty (new phones, trips, an earlier start) is not
labeled. Services emit seasonal metric streams with gaps, labeled shifts, spikes, error bursts
and traffic drops.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

PLACES = [  # country, region, city, tz, asn, ip prefix
    ("US", "New York", "New York", "America/New_York", "AS7922", "73.12"),
    ("US", "California", "San Jose", "America/Los_Angeles", "AS7018", "99.44"),
    ("DE", "Berlin", "Berlin", "Europe/Berlin", "AS3320", "84.150"),
    ("GB", "England", "London", "Europe/London", "AS2856", "81.2"),
    ("IN", "Karnataka", "Bengaluru", "Asia/Kolkata", "AS24560", "106.51"),
    ("JP", "Tokyo", "Tokyo", "Asia/Tokyo", "AS2516", "126.7"),
    ("BR", "Sao Paulo", "Sao Paulo", "America/Sao_Paulo", "AS28573", "177.9"),
    ("AU", "New South Wales", "Sydney", "Australia/Sydney", "AS1221", "120.16"),
]
ABROAD = [
    ("FR", "Ile-de-France", "Paris", "Europe/Paris", "AS3215", "90.8"),
    ("ES", "Madrid", "Madrid", "Europe/Madrid", "AS3352", "83.44"),
    ("SG", "Singapore", "Singapore", "Asia/Singapore", "AS9506", "116.14"),
    ("CA", "Ontario", "Toronto", "America/Toronto", "AS577", "142.11"),
    ("MX", "CDMX", "Mexico City", "America/Mexico_City", "AS8151", "187.18"),
]
HOSTILE = [
    ("RU", "Moscow", "Moscow", "Europe/Moscow", "AS8359", "95.165"),
    ("NG", "Lagos", "Lagos", "Africa/Lagos", "AS29465", "105.112"),
    ("VN", "Hanoi", "Hanoi", "Asia/Ho_Chi_Minh", "AS45899", "113.160"),
]
AGENTS = {
    "win": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36",
    "mac": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.4 Safari/605.1.15",
    "linux_ff": "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "iphone": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "android": "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Mobile Safari/537.36",
}
ENDPOINTS = ["/api/docs", "/api/search", "/api/profile", "/api/reports", "/api/files", "/api/inbox"]
USER_KINDS = ("sparse", "office", "night", "weekend", "traveller")
SCENARIO_MIX = {
    "sparse": {"sparse": 0.75, "office": 0.25},
    "shifts": {"night": 0.35, "weekend": 0.25, "office": 0.2, "sparse": 0.2},
    "travel": {"traveller": 0.4, "sparse": 0.4, "office": 0.2},
    "mixed": {"sparse": 0.5, "office": 0.2, "night": 0.1, "weekend": 0.1, "traveller": 0.1},
}


@dataclass
class Shaped:
    """Events, labels (labels-document format) and the benign changes left unlabeled."""

    events: list[dict[str, Any]]
    labels: dict[str, Any]
    benign: list[tuple[str, str]] = field(default_factory=list)
    entity_field: str = "user_id"


@dataclass
class _User:
    name: str
    kind: str
    home: tuple[str, ...]
    agent: str
    start_hour: float
    hours: float
    endpoints: list[str]
    bytes_scale: float
    rng: np.random.Generator


def _ts(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class _Builder:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.events: list[dict[str, Any]] = []

    def add(self, **fields: Any) -> dict[str, Any]:
        doc = {"_id": f"{self.prefix}-{len(self.events):07d}", **fields}
        self.events.append(doc)
        return doc


def _place_fields(place: tuple[str, ...], rng: np.random.Generator) -> dict[str, Any]:
    country, region, city, tz, asn, prefix = place
    ip = f"{prefix}.{int(rng.integers(1, 250))}.{int(rng.integers(1, 250))}"
    return {
        "country": country,
        "region": region,
        "city": city,
        "tz": tz,
        "asn": asn,
        "ip_address": ip,
    }


def _session(
    b: _Builder,
    u: _User,
    start: datetime,
    *,
    place: tuple[str, ...],
    agent: str,
    requests: int,
    byte_factor: float = 1.0,
    failures: int = 0,
) -> list[dict[str, Any]]:
    rng = u.rng
    where = _place_fields(place, rng)
    out = []
    t = start
    for _ in range(failures):
        out.append(
            b.add(
                user_id=u.name,
                timestamp=_ts(t),
                type="login",
                status_code=401,
                user_agent=agent,
                **where,
            )
        )
        t += timedelta(seconds=float(rng.uniform(2, 20)))
    out.append(
        b.add(
            user_id=u.name,
            timestamp=_ts(t),
            type="login",
            status_code=200,
            user_agent=agent,
            **where,
        )
    )
    for _ in range(requests):
        t += timedelta(seconds=float(rng.exponential(150)) + 5)
        status = 200 if rng.random() > 0.02 else int(rng.choice([404, 500]))
        out.append(
            b.add(
                user_id=u.name,
                timestamp=_ts(t),
                type="request",
                user_agent=agent,
                **where,
                endpoint=u.endpoints[int(rng.integers(len(u.endpoints)))],
                status_code=status,
                bytes_sent=float(rng.lognormal(np.log(20_000 * u.bytes_scale * byte_factor), 0.8)),
                latency_ms=float(rng.lognormal(np.log(120), 0.4)),
            )
        )
    return out


def _sessions_today(u: _User, weekday: int) -> int:
    rng = u.rng
    weekend = weekday >= 5
    if u.kind == "sparse":
        return int(rng.choice([0, 1, 1, 2], p=[0.3, 0.35, 0.15, 0.2]))
    if u.kind == "weekend":
        return int(rng.integers(2, 4)) if weekend else int(rng.random() < 0.05)
    if weekend:
        return int(rng.random() < 0.15)
    return int(rng.integers(2, 5))


def _make_user(i: int, kind: str, rng: np.random.Generator) -> _User:
    home = PLACES[int(rng.integers(len(PLACES)))]
    start = {"night": 22.0, "weekend": 9.0}.get(kind, float(rng.uniform(7.0, 10.0)))
    return _User(
        name=f"u{i:04d}",
        kind=kind,
        home=home,
        agent=AGENTS[str(rng.choice(["win", "mac", "linux_ff"]))],
        start_hour=start,
        hours=float(rng.uniform(6, 9)),
        endpoints=list(rng.choice(ENDPOINTS, size=int(rng.integers(2, 5)), replace=False)),
        bytes_scale=float(rng.lognormal(0, 0.5)),
        rng=rng,
    )


def _local(day0: datetime, day: int, hour: float, tz: str) -> datetime:
    base = (day0 + timedelta(days=day)).date()
    naive = datetime(base.year, base.month, base.day) + timedelta(hours=hour)
    return naive.replace(tzinfo=ZoneInfo(tz))


def users_scenario(
    name: str, *, users: int = 120, days: int = 28, seed: int = 1, start: datetime | None = None
) -> Shaped:
    """Users of the mix ``SCENARIO_MIX[name]``; 15% get one incident, 10% a benign change."""
    master = np.random.default_rng([seed, 101])
    mix = SCENARIO_MIX[name]
    kinds = master.choice(list(mix), size=users, p=list(mix.values()))
    day0 = (start or datetime(2026, 3, 2, tzinfo=UTC)).replace(hour=0, minute=0, second=0)
    late = int(days * 0.75)
    b = _Builder(f"{name}-{seed}")
    order = master.permutation(users)
    n_inc = max(5, round(users * 0.15))
    incident_kind = {int(u): k for u, k in zip(order[:n_inc], _cycle(n_inc), strict=True)}
    benign = {int(u) for u in order[n_inc : n_inc + max(2, users // 10)]}
    labels: dict[str, Any] = {"kinds": {}}
    changes: list[tuple[str, str]] = []
    for i in range(users):
        u = _make_user(i, str(kinds[i]), np.random.default_rng([seed, i]))
        trip_days = _trips(u, days) if u.kind == "traveller" else {}
        new_agent_from = None
        if i in benign:
            new_agent_from = int(u.rng.integers(late, days - 1))
            changes.append((u.name, "new_phone" if u.kind != "traveller" else "trip+phone"))
        for day in range(days):
            weekday = (day0 + timedelta(days=day)).weekday()
            place = trip_days.get(day, u.home)
            agent = (
                AGENTS["iphone"]
                if new_agent_from is not None and day >= new_agent_from and u.rng.random() < 0.6
                else u.agent
            )
            for _ in range(_sessions_today(u, weekday)):
                hour = u.start_hour + float(u.rng.uniform(0, u.hours))
                when = _local(day0, day, hour, place[3])
                requests = (
                    int(u.rng.integers(0, 5)) if u.kind == "sparse" else int(u.rng.integers(2, 14))
                )
                _session(b, u, when, place=place, agent=agent, requests=requests)
        if i in incident_kind:
            kind = incident_kind[i]
            day = int(u.rng.integers(late, days))
            injected = _inject(b, u, kind, day0, day)
            stamps = sorted(e["timestamp"] for e in injected)
            labels.setdefault(u.name, []).append([stamps[0], stamps[-1]])
            labels["kinds"].setdefault(u.name, []).append(kind)
    events = sorted(b.events, key=lambda e: (e["timestamp"], e["_id"]))
    return Shaped(events=events, labels=labels, benign=changes)


INCIDENTS = (
    "account_takeover",
    "data_exfiltration",
    "credential_stuffing",
    "off_hours",
    "impossible_travel",
)


def _cycle(n: int) -> list[str]:
    return [INCIDENTS[k % len(INCIDENTS)] for k in range(n)]


def _trips(u: _User, days: int) -> dict[int, tuple[str, ...]]:
    out: dict[int, tuple[str, ...]] = {}
    day = int(u.rng.integers(0, 5))
    while day < days:
        dest = ABROAD[int(u.rng.integers(len(ABROAD)))]
        for d in range(day, min(days, day + int(u.rng.integers(2, 5)))):
            out[d] = dest
        day += int(u.rng.integers(5, 10))
    return out


def _inject(b: _Builder, u: _User, kind: str, day0: datetime, day: int) -> list[dict[str, Any]]:
    rng = u.rng
    home_tz = u.home[3]
    work = _local(day0, day, u.start_hour + float(rng.uniform(0.5, 3)), home_tz)
    if kind == "account_takeover":
        place = HOSTILE[int(rng.integers(len(HOSTILE)))]
        return _session(
            b,
            u,
            work + timedelta(hours=float(rng.uniform(1, 5))),
            place=place,
            agent=AGENTS["linux_ff"] if "Firefox" not in u.agent else AGENTS["android"],
            requests=int(rng.integers(4, 12)),
            byte_factor=3.0,
        )
    if kind == "data_exfiltration":
        out = []
        t = work
        for _ in range(int(rng.integers(2, 4))):
            out += _session(
                b,
                u,
                t,
                place=u.home,
                agent=u.agent,
                requests=int(rng.integers(15, 30)),
                byte_factor=float(rng.uniform(8, 25)),
            )
            t += timedelta(minutes=float(rng.uniform(25, 40)))
        return out
    if kind == "credential_stuffing":
        place = HOSTILE[int(rng.integers(len(HOSTILE)))]
        out = []
        for k in range(int(rng.integers(25, 60))):
            where = _place_fields(place, rng)
            t = work + timedelta(seconds=k * float(rng.uniform(5, 30)))
            out.append(
                b.add(
                    user_id=u.name,
                    timestamp=_ts(t),
                    type="login",
                    status_code=401,
                    user_agent=AGENTS["linux_ff"],
                    **where,
                )
            )
        return out
    if kind == "off_hours":
        hour = (u.start_hour + 12 + float(rng.uniform(-1.5, 1.5))) % 24
        return _session(
            b,
            u,
            _local(day0, day, hour, home_tz),
            place=u.home,
            agent=u.agent,
            requests=int(rng.integers(3, 10)),
        )
    far = HOSTILE[int(rng.integers(len(HOSTILE)))]
    first = _session(b, u, work, place=u.home, agent=u.agent, requests=1)
    t = datetime.fromisoformat(first[-1]["timestamp"].replace("Z", "+00:00"))
    return first + _session(
        b,
        u,
        t + timedelta(minutes=float(rng.uniform(10, 50))),
        place=far,
        agent=u.agent,
        requests=int(rng.integers(1, 4)),
    )


def services_scenario(
    *, services: int = 12, days: int = 28, seed: int = 1, start: datetime | None = None
) -> Shaped:
    """Seasonal per-service metric streams with gaps and labeled shifts, spikes, bursts, drops."""
    day0 = (start or datetime(2026, 3, 2, tzinfo=UTC)).replace(hour=0, minute=0, second=0)
    b = _Builder(f"svc-{seed}")
    labels: dict[str, Any] = {"kinds": {}}
    kinds = ("level_shift", "latency_spike", "error_burst", "traffic_drop")
    for i in range(services):
        rng = np.random.default_rng([seed, 900 + i])
        name = f"svc-{i:02d}"
        cadence = float(rng.uniform(60, 300))
        base = float(rng.uniform(40, 400))
        peak = float(rng.uniform(10, 20))
        amp = float(rng.uniform(0.3, 0.9))
        weekend = float(rng.uniform(0.5, 0.9))
        metric_only = i % 2 == 1
        kind = kinds[i % len(kinds)]
        inc_start = day0 + timedelta(days=int(days * 0.75) + float(rng.uniform(0, days * 0.2)))
        inc_len = timedelta(
            hours={
                "level_shift": 3.0,
                "latency_spike": 0.4,
                "error_burst": 0.6,
                "traffic_drop": 2.0,
            }[kind]
        )
        gaps = [
            (
                day0 + timedelta(days=float(rng.uniform(1, days * 0.7))),
                timedelta(hours=float(rng.uniform(1, 5))),
            )
            for _ in range(2)
        ]
        t = day0
        end = day0 + timedelta(days=days)
        inside: list[str] = []
        while t < end:
            hour = t.hour + t.minute / 60
            rhythm = 1 + amp * np.cos(2 * np.pi * (hour - peak) / 24)
            level = rhythm * (weekend if t.weekday() >= 5 else 1.0)
            in_inc = inc_start <= t < inc_start + inc_len
            step = cadence / max(level, 0.2)
            if in_inc and kind == "traffic_drop":
                step *= 6
            t += timedelta(seconds=float(rng.exponential(step)) + 1)
            if any(g0 <= t < g0 + glen for g0, glen in gaps):
                continue
            latency = base * (0.8 + 0.4 * rhythm) * float(rng.lognormal(0, 0.25))
            status = 200 if rng.random() > 0.01 else 500
            if in_inc and kind == "level_shift":
                latency *= 1.6
            if in_inc and kind == "latency_spike":
                latency *= 6
            if in_inc and kind == "error_burst":
                status = 503 if rng.random() < 0.35 else 200
            doc: dict[str, Any] = {"service": name, "timestamp": _ts(t), "latency_ms": latency}
            if not metric_only:
                doc |= {
                    "type": "request",
                    "status_code": status,
                    "endpoint": "/v1/items",
                    "bytes_sent": float(rng.lognormal(8, 0.5)),
                }
            elif kind == "error_burst":
                doc |= {"status_code": status}
            event = b.add(**doc)
            if in_inc:
                inside.append(event["timestamp"])
        if inside:
            labels[name] = [[min(inside), max(inside)]]
            labels["kinds"][name] = [kind]
    events = sorted(b.events, key=lambda e: (e["timestamp"], e["_id"]))
    return Shaped(events=events, labels=labels, entity_field="service")
