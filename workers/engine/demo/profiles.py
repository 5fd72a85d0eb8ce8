"""Per-user behaviour profiles: home, devices, working hours, endpoints, rates and sizes."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from workers.engine.demo.catalog import (
    DESKTOP_DEVICES,
    ENDPOINTS,
    HOME_PLACES,
    PHONE_DEVICES,
    Place,
)


@dataclass
class Profile:
    """What is normal for one demo user. Hours are local; ``place.utc_offset`` converts to UTC."""

    entity: str
    place: Place
    ip_prefix: str  # home /24 as "a.b.c"
    ip_hosts: tuple[int, ...]  # the user's IP pool inside the /24
    devices: list[str]  # keys of catalog.USER_AGENTS; the first is the primary one
    device_weights: list[float]
    work_start: float  # local hour the working day starts
    work_hours: float  # length of the working day in hours
    weekend_prob: float  # chance of a short session on a weekend day
    endpoints: list[str]
    endpoint_weights: list[float]
    rate_per_hour: float  # requests per hour inside a session
    byte_scale: float
    latency_scale: float
    login_fail_prob: float
    # Benign change: (device key, first day index) — a new phone from that day on.
    new_device: tuple[str, int] | None = field(default=None)


def make_profile(rng: np.random.Generator, index: int) -> Profile:
    """Draw a plausible profile for demo user number ``index`` from ``rng``."""
    place = HOME_PLACES[int(rng.integers(len(HOME_PLACES)))]
    octet = place.octets[int(rng.integers(len(place.octets)))]
    ip_prefix = f"{octet}.{int(rng.integers(1, 255))}.{int(rng.integers(0, 255))}"
    ip_hosts = tuple(int(h) for h in rng.choice(np.arange(2, 254), size=3, replace=False))
    devices = [DESKTOP_DEVICES[int(rng.integers(len(DESKTOP_DEVICES)))]]
    weights = [1.0]
    if rng.random() < 0.5:
        devices.append(PHONE_DEVICES[int(rng.integers(len(PHONE_DEVICES)))])
        weights = [0.8, 0.2]
    n_endpoints = int(rng.integers(4, 8))
    names = list(ENDPOINTS)
    chosen = [names[int(i)] for i in rng.choice(len(names), size=n_endpoints, replace=False)]
    endpoint_weights = rng.dirichlet(np.full(n_endpoints, 2.0))
    return Profile(
        entity=f"user{index:03d}",
        place=place,
        ip_prefix=ip_prefix,
        ip_hosts=ip_hosts,
        devices=devices,
        device_weights=weights,
        work_start=float(rng.uniform(7.0, 10.0)),
        work_hours=float(rng.uniform(6.5, 9.0)),
        weekend_prob=float(rng.uniform(0.05, 0.3)),
        endpoints=chosen,
        endpoint_weights=[float(w) for w in endpoint_weights],
        rate_per_hour=float(rng.uniform(10.0, 28.0)),
        byte_scale=float(rng.lognormal(0.0, 0.4)),
        latency_scale=float(rng.lognormal(0.0, 0.25)),
        login_fail_prob=float(rng.uniform(0.01, 0.06)),
    )
