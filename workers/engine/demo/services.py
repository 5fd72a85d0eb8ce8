"""Service entities: metric-style request streams, 24/7 with a daily rhythm.

Every third service emits only ``timestamp`` and ``latency_ms`` (a pure metric stream), the
others also ``endpoint``, ``status_code`` and ``bytes_sent``. No logins, agents or locations.
Incidents modify or add events inside a window and mark them; the benign change is a new API
version endpoint taking part of the traffic.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from workers.engine.demo.activity import MS_PER_DAY, MS_PER_HOUR, MS_PER_MINUTE, RawEvent
from workers.engine.demo.incidents import Context

SERVICE_INCIDENT_KINDS: tuple[str, ...] = ("latency_regression", "error_burst", "traffic_spike")
_NAMES = (
    "checkout-api",
    "search-api",
    "auth-service",
    "billing-worker",
    "inventory-api",
    "notifications",
    "reports-api",
    "gateway",
)
_ENDPOINTS = ("/v1/items", "/v1/orders", "/v1/health", "/v1/query", "/v1/batch", "/v1/users")


@dataclass
class ServiceProfile:
    """What is normal for one demo service (rates per hour, medians in bytes and ms)."""

    entity: str
    metric_only: bool
    rate_per_hour: float
    peak_hour: float  # UTC hour of the daily traffic peak
    endpoints: list[str]
    bytes_median: float
    latency_median: float
    error_rate: float
    new_endpoint: tuple[str, int] | None = None  # benign: (endpoint, first day)


def make_service(rng: np.random.Generator, index: int) -> ServiceProfile:
    """Draw a plausible profile for demo service number ``index``."""
    name = _NAMES[index % len(_NAMES)]
    entity = name if index < len(_NAMES) else f"{name}-{index // len(_NAMES) + 1}"
    picks = rng.choice(len(_ENDPOINTS), size=int(rng.integers(2, 5)), replace=False)
    return ServiceProfile(
        entity=entity,
        metric_only=index % 3 == 2,
        rate_per_hour=float(rng.uniform(8.0, 25.0)),
        peak_hour=float(rng.uniform(12.0, 20.0)),
        endpoints=[_ENDPOINTS[int(i)] for i in picks],
        bytes_median=float(rng.lognormal(8.0, 0.8)),
        latency_median=float(rng.uniform(20.0, 150.0)),
        error_rate=float(rng.uniform(0.002, 0.02)),
    )


def _event(rng: np.random.Generator, s: ServiceProfile, ts: int, day: int) -> RawEvent:
    latency = round(s.latency_median * float(rng.lognormal(0.0, 0.3)), 1)
    if s.metric_only:
        return {"entity": s.entity, "ts": ts, "latency_ms": latency}
    endpoint = s.endpoints[int(rng.integers(len(s.endpoints)))]
    if s.new_endpoint is not None and day >= s.new_endpoint[1] and rng.random() < 0.3:
        endpoint = s.new_endpoint[0]
    error = rng.random() < s.error_rate
    return {
        "entity": s.entity,
        "ts": ts,
        "type": "request",
        "endpoint": endpoint,
        "status_code": int(rng.choice([500, 502, 503])) if error else 200,
        "bytes_sent": 200 if error else int(s.bytes_median * float(rng.lognormal(0.0, 0.5))),
        "latency_ms": latency,
    }


def service_activity(
    rng: np.random.Generator, s: ServiceProfile, *, start_ms: int, start_weekday: int, days: int
) -> list[RawEvent]:
    """A service's ordinary traffic: Poisson per hour, daily cosine rhythm, quieter weekends."""
    events: list[RawEvent] = []
    for hour in range(days * 24):
        day, h = divmod(hour, 24)
        shape = 0.55 + 0.45 * np.cos(2 * np.pi * (h - s.peak_hour) / 24.0)
        weekend = 0.6 if (start_weekday + day) % 7 >= 5 else 1.0
        base = start_ms + hour * MS_PER_HOUR
        count = int(rng.poisson(s.rate_per_hour * shape * weekend))
        for ts in np.sort(rng.integers(base, base + MS_PER_HOUR, size=count)):
            events.append(_event(rng, s, int(ts), day))
    return events


def _window(
    rng: np.random.Generator, ctx: Context, minutes: tuple[float, float]
) -> tuple[int, int]:
    day = ctx.late_days[int(rng.integers(len(ctx.late_days)))]
    begin = ctx.start_ms + day * MS_PER_DAY + int(rng.uniform(0.0, 20.0) * MS_PER_HOUR)
    return begin, begin + int(rng.uniform(*minutes) * MS_PER_MINUTE)


def latency_regression(
    rng: np.random.Generator, s: ServiceProfile, ctx: Context, events: list[RawEvent]
) -> list[RawEvent]:
    """Latency 4-8x normal for 1-3 hours (the service's own events, modified)."""
    begin, end = _window(rng, ctx, (60.0, 180.0))
    factor = rng.uniform(4.0, 8.0)
    hit = [e for e in events if begin <= e["ts"] < end]
    if len(hit) < 6:  # a quiet hour: make sure the regression is visible at all
        added = [_event(rng, s, int(t), 0) for t in np.sort(rng.integers(begin, end, size=6))]
        events.extend(added)
        hit += added
    for e in hit:
        e["latency_ms"] = round(e["latency_ms"] * factor, 1)
    return hit


def error_burst(
    rng: np.random.Generator, s: ServiceProfile, ctx: Context, events: list[RawEvent]
) -> list[RawEvent]:
    """20-60 minutes where 40-70% of requests fail with 5xx, plus client retries."""
    begin, end = _window(rng, ctx, (20.0, 60.0))
    share = rng.uniform(0.4, 0.7)
    retries = [
        _event(rng, s, int(t), 0) for t in rng.integers(begin, end, size=int(rng.integers(30, 60)))
    ]
    hit = [e for e in events if begin <= e["ts"] < end] + retries
    for e in hit:
        if rng.random() < share:
            e["latency_ms"] = round(e["latency_ms"] * 3.0, 1)
            if not s.metric_only:
                e["status_code"], e["bytes_sent"] = 503, 180
    events.extend(retries)
    return hit


def traffic_spike(
    rng: np.random.Generator, s: ServiceProfile, ctx: Context, events: list[RawEvent]
) -> list[RawEvent]:
    """30-90 minutes at 8-15x the normal request rate (a scraper or a retry storm)."""
    begin, end = _window(rng, ctx, (30.0, 90.0))
    extra = int(s.rate_per_hour * rng.uniform(8.0, 15.0) * (end - begin) / MS_PER_HOUR)
    added = [_event(rng, s, int(t), 0) for t in np.sort(rng.integers(begin, end, size=extra))]
    events.extend(added)
    return added


SERVICE_INJECTORS: dict[
    str, Callable[[np.random.Generator, ServiceProfile, Context, list[RawEvent]], list[RawEvent]]
] = {
    "latency_regression": latency_regression,
    "error_burst": error_burst,
    "traffic_spike": traffic_spike,
}
