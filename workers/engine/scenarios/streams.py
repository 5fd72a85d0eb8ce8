"""The ``services`` scenario: per-service metric streams with daily and weekly seasonality.

Each service has its own level, noise, weekday/weekend ratio, slow benign trend and a few benign
gaps (hours with no events). Request services emit one event per request (Poisson rate following
the seasonality, latency rising with load, a small 5xx share); latency-only services emit one
``latency_ms`` point every 1-5 minutes. Incidents are injected in the last ~25% of days.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from workers.engine.demo_data import format_ts
from workers.engine.scenarios.attacks import Span
from workers.engine.scenarios.people import RawEvent
from workers.engine.scenarios.sites import MS_PER_DAY, MS_PER_HOUR, MS_PER_MINUTE

SERVICE_KINDS: tuple[str, ...] = (
    "latency_level_shift",
    "latency_spike",
    "error_burst",
    "traffic_drop",
    "traffic_spike",
)
LATENCY_ONLY_KINDS: tuple[str, ...] = ("latency_level_shift", "latency_spike")
MAX_SERVICES = 20  # keeps users=200 under the size budget; more are capped
_NAMES = (
    "billing",
    "catalog",
    "auth",
    "search",
    "media",
    "ledger",
    "notify",
    "geo",
    "quote",
    "sync",
)
_BUCKET_MS = 5 * MS_PER_MINUTE


@dataclass
class Service:
    """One service's seasonality, noise and benign gaps; ``step_min`` > 0 means latency-only."""

    entity: str
    rate_per_hour: float  # weekday mean
    weekend_ratio: float
    peak_hour: float  # UTC
    daily_amp: float
    latency_ms: float
    noise: float
    trend_per_day: float  # benign slow drift of latency
    error_rate: float
    endpoints: tuple[str, ...]
    step_min: float = 0.0
    gaps: list[tuple[int, int]] = field(default_factory=list)  # [start, end) epoch ms


def make_service(rng: np.random.Generator, index: int, span: Span) -> Service:
    """A seeded service named ``<name>-<n>``; about a third are latency-only streams."""
    name = f"{_NAMES[index % len(_NAMES)]}-{index // len(_NAMES) + 1}"
    latency_only = index % 3 == 2
    base = f"/v1/{name.split('-')[0]}"
    service = Service(
        entity=name,
        rate_per_hour=float(rng.uniform(6, 20)),
        weekend_ratio=float(rng.choice([0.35, 0.55, 1.6])),  # mostly quieter, some busier
        peak_hour=float(rng.uniform(10, 20)),
        daily_amp=float(rng.uniform(0.4, 0.85)),
        latency_ms=float(rng.lognormal(math.log(90), 0.6)),
        noise=float(rng.uniform(0.12, 0.4)),
        trend_per_day=float(rng.uniform(-0.004, 0.012)),
        error_rate=float(rng.uniform(0.002, 0.012)),
        endpoints=(base, f"{base}/{{id}}", f"{base}/search"),
        step_min=float(rng.choice([1.5, 2.0, 3.0, 5.0])) if latency_only else 0.0,
    )
    for _ in range(int(rng.integers(1, 4))):
        start = span.start_ms + int(rng.uniform(0, span.days - 0.5) * MS_PER_DAY)
        service.gaps.append((start, start + int(rng.uniform(1.5, 6.0) * MS_PER_HOUR)))
    return service


def _load(service: Service, ts: np.ndarray, span: Span) -> np.ndarray:
    """Relative load (mean ~1 on weekdays) at epoch ms ``ts``: daily wave times weekday level."""
    hours = (ts % MS_PER_DAY) / MS_PER_HOUR
    wave = 1.0 + service.daily_amp * np.cos(2 * np.pi * (hours - service.peak_hour) / 24)
    weekday = (span.start_weekday + (ts - span.start_ms) // MS_PER_DAY) % 7
    return wave * np.where(weekday >= 5, service.weekend_ratio, 1.0)


def _latency(rng: np.random.Generator, service: Service, ts: np.ndarray, span: Span) -> np.ndarray:
    days = (ts - span.start_ms) / MS_PER_DAY
    load = _load(service, ts, span)
    level = service.latency_ms * (1 + service.trend_per_day * days) * (0.75 + 0.25 * load)
    return level * rng.lognormal(0.0, service.noise, len(ts))


def service_stream(rng: np.random.Generator, service: Service, span: Span) -> list[RawEvent]:
    """The service's benign events over the whole span (gaps excluded)."""
    end = span.start_ms + span.days * MS_PER_DAY
    if service.step_min:
        step = int(service.step_min * MS_PER_MINUTE)
        ts = np.arange(span.start_ms + int(rng.integers(0, step)), end, step, dtype=np.int64)
        ts = ts + rng.integers(-2_000, 2_000, len(ts))
    else:
        buckets = np.arange(span.start_ms, end, _BUCKET_MS, dtype=np.int64)
        mean = service.rate_per_hour * _BUCKET_MS / MS_PER_HOUR * _load(service, buckets, span)
        counts = rng.poisson(mean)
        ts = np.repeat(buckets, counts) + rng.integers(0, _BUCKET_MS, int(counts.sum()))
        ts.sort()
    keep = np.ones(len(ts), dtype=bool)
    for lo, hi in service.gaps:
        keep &= (ts < lo) | (ts >= hi)
    ts = ts[keep & (ts >= span.start_ms) & (ts < end)]
    latency = _latency(rng, service, ts, span)
    return [_event(rng, service, int(t), float(lat)) for t, lat in zip(ts, latency, strict=True)]


def _event(
    rng: np.random.Generator, service: Service, ts: int, latency: float, error_rate: float = -1.0
) -> RawEvent:
    event: RawEvent = {"entity": service.entity, "ts": ts, "latency_ms": round(latency, 1)}
    if service.step_min:
        return event
    rate = service.error_rate if error_rate < 0 else error_rate
    draw = rng.random()
    status = 503 if draw < rate else 404 if draw < rate + 0.02 else 200
    endpoint = service.endpoints[int(rng.integers(len(service.endpoints)))]
    event.update(
        type="request",
        endpoint=endpoint,
        status_code=status,
        bytes_sent=int(rng.lognormal(math.log(2_400), 0.5)) if status == 200 else 240,
    )
    if status >= 500:
        event["latency_ms"] = round(latency * 2.5, 1)
    return event


def _window(
    rng: np.random.Generator, service: Service, span: Span, hours: float
) -> tuple[int, int]:
    """A late window of ``hours`` hours clear of the service's gaps."""
    for _ in range(50):
        day = span.late_days[int(rng.integers(len(span.late_days)))]
        lo = span.start_ms + day * MS_PER_DAY + int(rng.uniform(1, 23 - hours) * MS_PER_HOUR)
        hi = lo + int(hours * MS_PER_HOUR)
        if all(hi <= g_lo - MS_PER_HOUR or lo >= g_hi + MS_PER_HOUR for g_lo, g_hi in service.gaps):
            return lo, hi
    return lo, hi


def inject(
    rng: np.random.Generator, kind: str, service: Service, span: Span, events: list[RawEvent]
) -> list[RawEvent]:
    """Apply incident ``kind`` to ``events`` in place; returns the events that belong to it.

    Modified events are returned, and so are added ones (which are also appended to ``events``).
    """
    hours = {
        "latency_level_shift": rng.uniform(2, 8),
        "latency_spike": rng.uniform(0.5, 1.5),
        "error_burst": rng.uniform(0.3, 1.5),
        "traffic_drop": rng.uniform(1, 4),
        "traffic_spike": rng.uniform(0.5, 2),
    }[kind]
    lo, hi = _window(rng, service, span, float(hours))
    inside = [e for e in events if lo <= e["ts"] < hi]
    if kind == "latency_level_shift":
        factor = float(rng.choice([1.4, 2.0, 3.0]))
        for e in inside:
            e["latency_ms"] = round(e["latency_ms"] * factor, 1)
        return inside
    if kind == "latency_spike":
        hit: list[RawEvent] = []
        for _ in range(int(rng.integers(1, 4))):
            at = lo + int(rng.uniform(0, hi - lo - 20 * MS_PER_MINUTE))
            width = int(rng.uniform(5, 20) * MS_PER_MINUTE)
            factor = float(rng.uniform(3, 8))
            for e in inside:
                if at <= e["ts"] < at + width and e not in hit:
                    e["latency_ms"] = round(e["latency_ms"] * factor, 1)
                    hit.append(e)
        return sorted(hit, key=lambda e: e["ts"])
    if kind == "error_burst":
        share = float(rng.choice([0.08, 0.2, 0.45]))
        for e in inside:
            if rng.random() < share:
                e.update(
                    status_code=503, bytes_sent=240, latency_ms=round(e["latency_ms"] * 2.5, 1)
                )
        return inside
    if kind == "traffic_drop":
        keep = float(rng.choice([0.1, 0.25]))
        dropped = {id(e) for e in inside if rng.random() >= keep}
        events[:] = [e for e in events if id(e) not in dropped]
        return [e for e in inside if id(e) not in dropped]
    factor = float(rng.choice([3.0, 5.0, 8.0]))
    extra = rng.poisson(len(inside) * (factor - 1)) if inside else int(factor * 10)
    stamps = np.sort(rng.integers(lo, hi, int(extra)))
    latency = _latency(rng, service, stamps, span)
    added = [_event(rng, service, int(t), float(v)) for t, v in zip(stamps, latency, strict=True)]
    events += added
    return sorted(inside + added, key=lambda e: e["ts"])


def service_population(
    services: int, seed: int, span: Span
) -> tuple[list[RawEvent], list[tuple[str, str]], list[tuple[str, str, int, str]]]:
    """Raw events of ``min(services, MAX_SERVICES)`` services, incidents (entity, kind) and
    benign changes (entity, kind, start ms, detail): the late gaps and each trend."""
    n = min(services, MAX_SERVICES)
    plan = np.random.default_rng([seed, n, 3, 1212])
    order = [int(i) for i in plan.permutation(n)]
    n_incidents = min(n, max(len(SERVICE_KINDS), round(n * 0.25)))
    raw: list[RawEvent] = []
    incidents: list[tuple[str, str]] = []
    benign: list[tuple[str, str, int, str]] = []
    first_late = span.start_ms + span.late_days[0] * MS_PER_DAY
    services_ = [make_service(np.random.default_rng([seed, i, 0, 1212]), i, span) for i in range(n)]
    request_ids = [i for i in order if not services_[i].step_min]
    metric_ids = [i for i in order if services_[i].step_min]
    plan_kinds: dict[int, str] = {}
    for k in range(n_incidents):
        kind = SERVICE_KINDS[k % len(SERVICE_KINDS)]
        pool = metric_ids + request_ids if kind in LATENCY_ONLY_KINDS else request_ids
        free = [i for i in pool if i not in plan_kinds]
        if free:
            plan_kinds[free[0]] = kind
    for index, service in enumerate(services_):
        events = service_stream(np.random.default_rng([seed, index, 1, 1212]), service, span)
        if index in plan_kinds:
            rng = np.random.default_rng([seed, index, 2, 1212])
            for event in inject(rng, plan_kinds[index], service, span, events):
                event["incident"] = len(incidents)
            incidents.append((service.entity, plan_kinds[index]))
        for lo, hi in service.gaps:
            if lo >= first_late:
                benign.append(
                    (
                        service.entity,
                        "data_gap",
                        lo,
                        f"no events until {format_ts(hi)} ({(hi - lo) / MS_PER_HOUR:.1f} h)",
                    )
                )
        benign.append(
            (service.entity, "trend", span.start_ms, f"latency {service.trend_per_day:+.1%}/day")
        )
        raw += events
    return raw, incidents, benign
