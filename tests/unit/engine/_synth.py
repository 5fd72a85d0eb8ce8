"""Seeded synthetic events for engine unit tests (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

CHROME_WIN = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)
FIREFOX_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1"
)
START = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
HOME = {"country": "US", "region": "California", "city": "San Jose", "asn": "AS7922"}
KYIV = {"country": "UA", "region": "Kyiv", "city": "Kyiv", "asn": "AS15895"}
MOSCOW = {"country": "RU", "region": "Moscow", "city": "Moscow", "asn": "AS8359"}
ENDPOINTS = ("/api/orders", "/api/items", "/api/profile", "/api/search")


def iso(ts: datetime) -> str:
    """Canonical UTC ISO string with milliseconds."""
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def login(
    user: str,
    ts: datetime,
    n: int,
    *,
    place: dict[str, str] = HOME,
    ua: str = CHROME_WIN,
    ip: str = "73.15.20.9",
    status: int = 200,
) -> dict[str, Any]:
    """One login event."""
    return {
        "_id": f"{user}-login-{n}",
        "user_id": user,
        "timestamp": iso(ts),
        "type": "login",
        "ip_address": ip,
        **place,
        "user_agent": ua,
        "endpoint": "/login",
        "status_code": status,
        "bytes_sent": 800,
        "latency_ms": 110.0,
    }


def history(
    user: str = "alice", *, days: int = 30, seed: int = 0, start: datetime = START
) -> list[dict[str, Any]]:
    """Working-hours sessions (US, Chrome on Windows): a login then 3-8 requests each."""
    rng = np.random.default_rng(seed)
    events: list[dict[str, Any]] = []
    n = 0
    for day in range(days):
        base = start + timedelta(days=day)
        if base.weekday() >= 5:
            continue
        for hour in rng.choice(np.arange(15, 23), size=3, replace=False):  # 15-23 UTC
            t = base + timedelta(hours=int(hour), minutes=int(rng.integers(0, 30)))
            events.append(login(user, t, n))
            n += 1
            for _ in range(int(rng.integers(3, 9))):
                t += timedelta(seconds=int(rng.integers(20, 120)))
                events.append(
                    {
                        "_id": f"{user}-req-{n}",
                        "user_id": user,
                        "timestamp": iso(t),
                        "type": "request",
                        "ip_address": "73.15.20.9",
                        **HOME,
                        "user_agent": CHROME_WIN,
                        "endpoint": ENDPOINTS[int(rng.integers(len(ENDPOINTS)))],
                        "status_code": 200,
                        "bytes_sent": float(rng.lognormal(9.0, 0.3)),
                        "latency_ms": float(rng.lognormal(4.5, 0.2)),
                    }
                )
                n += 1
    return events


def metric_stream(
    service: str = "billing", *, hours: int = 24 * 14, seed: int = 0, spike_at: int | None = None
) -> list[dict[str, Any]]:
    """A service emitting only timestamp + latency_ms every 5 minutes."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(hours * 12):
        t = START + timedelta(minutes=5 * i)
        latency = float(rng.lognormal(4.0, 0.15))
        if spike_at is not None and spike_at <= i < spike_at + 6:
            latency *= 12.0
        out.append(
            {
                "_id": f"{service}-{i}",
                "service": service,
                "timestamp": iso(t),
                "latency_ms": latency,
            }
        )
    return out
