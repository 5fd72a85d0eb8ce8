"""Seeded seasonal service streams for the seasonal detector's tests (no I/O).

:func:`seasonal_stream` builds window features directly (fast, for quality floors and
false-alert rates); :func:`service_events` builds raw ``service`` events and labels, scored
through the production feature path by :func:`pipeline_aucs`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from workers.engine.detectors.robust_zscore import RobustZScore
from workers.engine.detectors.seasonal import SeasonalBaseline, hour_of_week
from workers.engine.evaluation.labels import load_labels
from workers.engine.features import (
    LOGGED_FEATURES,
    Z_MIN_SCALE,
    events_frame,
    feature_matrix,
    window_features,
)

FEATURES = ("events", "ratio_5xx", "bytes_sum", "bytes_max", "latency_mean", "latency_p95")
WINDOW_NS = 900 * 1_000_000_000
START_NS = 1_767_225_600 * 1_000_000_000  # 2026-01-01 00:00 UTC, a Thursday
KINDS = ("level_shift", "spike", "error_burst", "traffic_drop")


def seasonal_stream(
    seed: int, days: int = 28, *, anomalies: bool = True, growth: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One service's 15-min windows: (X over FEATURES, window starts ns, label per row).

    Daily rhythm (traffic ×~8 day/night, latency rising with load), a weekend dip, lognormal
    noise, telemetry gaps (empty windows vanish, as ``window_features`` only keeps active ones)
    and labeled incidents in the last 30%: latency level shifts (+40% for 3 h), single-window
    spikes, 5xx bursts and traffic drops. ``growth`` raises traffic and latency linearly by
    that share over the stream.
    """
    rng = np.random.default_rng(seed)
    n = days * 96
    t = START_NS + np.arange(n, dtype=np.int64) * WINDOW_NS
    hour = (t // 3_600_000_000_000) % 24 + (t // WINDOW_NS % 4) / 4
    weekend = hour_of_week(t) >= 120
    phase = rng.uniform(0, 24)
    load = 0.5 + 0.5 * np.cos(2 * np.pi * (hour - 14 - phase / 6) / 24)  # 0 at night, 1 at peak
    base = rng.uniform(30, 200)
    trend = 1 + growth * np.arange(n) / n
    rate = base * trend * (0.12 + load) * np.where(weekend, 0.55, 1.0)
    level = np.ones(n)  # latency multiplier
    err = np.full(n, 0.002)
    traffic = np.ones(n)
    bigmult = np.ones(n)
    label = np.zeros(n, dtype=bool)
    if anomalies:
        for _ in range(10):
            kind = KINDS[rng.integers(len(KINDS))]
            at = int(rng.integers(int(0.7 * n), n - 16))
            span = {"level_shift": 12, "spike": 1, "error_burst": 3, "traffic_drop": 8}[kind]
            sl = slice(at, at + span)
            if kind == "level_shift":
                level[sl] *= 1.4
            elif kind == "spike":
                level[sl] *= 2.5
                bigmult[sl] *= 6.0
            elif kind == "error_burst":
                err[sl] = 0.06
            else:
                traffic[sl] *= 0.35
            label[sl] = True
    events = rng.poisson(rate * traffic).astype(float)
    latency = 40 * trend * (1 + 0.8 * load) * level * np.exp(rng.normal(0, 0.12, n))
    p95 = latency * 2.2 * np.exp(rng.normal(0, 0.15, n))
    errors = rng.binomial(events.astype(int), err)
    ratio = np.where(events > 0, errors / np.maximum(events, 1), 0.0)
    per_req = 2_000 * np.exp(rng.normal(0, 0.25, n))
    bytes_sum = events * per_req
    bytes_max = per_req * (3 + np.log1p(events)) * bigmult * np.exp(rng.normal(0, 0.3, n))
    X = np.column_stack([events, ratio, bytes_sum, bytes_max, latency, p95])
    keep = events > 0
    keep &= rng.random(n) > 0.03  # isolated missing windows
    for _ in range(3):  # telemetry outages of 2-10 hours
        at = int(rng.integers(0, n - 40))
        keep[at : at + int(rng.integers(8, 40))] = False
    return X[keep], t[keep], label[keep]


def robust_z(X: np.ndarray, features: tuple[str, ...] = FEATURES) -> RobustZScore:
    """The production robust z-score, configured as model.py does for these features."""
    return RobustZScore(
        logged=tuple(i for i, f in enumerate(features) if f in LOGGED_FEATURES),
        min_scale=tuple(Z_MIN_SCALE.get(f, 0.0) for f in features),
    ).fit(X)


def service_events(
    seed: int, *, services: int = 2, days: int = 21
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Raw ``service`` request events with a daily/weekly rhythm, and their labels document.

    Each request has ``timestamp``, ``latency_ms``, ``status_code``, ``bytes_sent`` and
    ``endpoint``. The last 30% of each service holds 6 labeled incidents (kinds as
    :data:`KINDS`).
    """
    rng = np.random.default_rng(seed)
    events: list[dict[str, Any]] = []
    labels: dict[str, Any] = {"kinds": {}}
    n = days * 96
    t = START_NS + np.arange(n, dtype=np.int64) * WINDOW_NS
    hour = (t // 3_600_000_000_000) % 24 + (t // WINDOW_NS % 4) / 4
    weekend = hour_of_week(t) >= 120
    for s in range(services):
        name = f"svc-{seed}-{s}"
        load = 0.5 + 0.5 * np.cos(2 * np.pi * (hour - rng.uniform(10, 18)) / 24)
        rate = rng.uniform(6, 14) * (0.1 + load) * np.where(weekend, 0.6, 1.0)
        latency, err = 30 * (1 + load), np.full(n, 0.003)
        spans, kinds = [], []
        for _ in range(6):
            kind = str(KINDS[rng.integers(len(KINDS))])
            at = int(rng.integers(int(0.7 * n), n - 16))
            span = {"level_shift": 12, "spike": 1, "error_burst": 3, "traffic_drop": 8}[kind]
            sl = slice(at, at + span)
            if kind == "level_shift":
                latency[sl] *= 1.4
            elif kind == "spike":
                latency[sl] *= 3.0
            elif kind == "error_burst":
                err[sl] = 0.08
            else:
                rate[sl] *= 0.3
            spans.append([_iso(int(t[at])), _iso(int(t[at + span - 1]) + WINDOW_NS - 1)])
            kinds.append(kind)
        labels[name], labels["kinds"][name] = spans, kinds
        counts = rng.poisson(rate)
        win = np.repeat(np.arange(n), counts)
        stamp = t[win] + rng.integers(0, WINDOW_NS, size=len(win))
        lat = latency[win] * np.exp(rng.normal(0, 0.35, len(win)))
        status = np.where(rng.random(len(win)) < err[win], 500, 200)
        size = np.round(1500 * np.exp(rng.normal(0, 0.8, len(win))))
        endpoint = rng.choice(["/api/a", "/api/b", "/api/c"], size=len(win))
        for i in range(len(win)):
            events.append(
                {
                    "_id": f"{name}-{i}",
                    "service": name,
                    "timestamp": _iso(int(stamp[i])),
                    "latency_ms": float(lat[i]),
                    "status_code": int(status[i]),
                    "bytes_sent": float(size[i]),
                    "endpoint": str(endpoint[i]),
                }
            )
    return events, labels


def _iso(ns: int) -> str:
    return pd.Timestamp(ns, unit="ns", tz="UTC").isoformat()


def pipeline_aucs(
    events: list[dict[str, Any]],
    labels: Mapping[str, Any],
    *,
    entity_field: str = "service",
    features: tuple[str, ...] = FEATURES,
) -> dict[str, tuple[float, float]]:
    """Per entity with labels, (SeasonalBaseline ROC-AUC, RobustZScore ROC-AUC) on its windows.

    Windows come from ``events_frame`` + ``window_features``; features with data in training
    are used, NaN filled with the training median. Fit on the first 70% of the windows, score
    the rest (two hours of context first); a window is positive when it overlaps a span.
    """
    frame = events_frame(events, entity_field)
    spans = load_labels(dict(labels))
    out: dict[str, tuple[float, float]] = {}
    for entity in sorted(spans.entities()):
        windows = window_features(frame[frame["entity"] == entity].reset_index(drop=True))
        cut = int(0.7 * len(windows))
        train = windows.iloc[:cut]
        used = tuple(f for f in features if train[f].notna().any())
        fill = {f: float(np.nanmedian(train[f].to_numpy(float))) for f in used}
        X = feature_matrix(windows, used, fill)
        t = pd.DatetimeIndex(windows["window_start"]).as_unit("ns").asi8
        y = np.zeros(len(windows), dtype=bool)
        for inc in spans.for_entity(entity):
            y |= (windows["window_start"] <= inc.end).to_numpy() & (
                windows["window_end"] > inc.start
            ).to_numpy()
        if y[cut:].all() or not y[cut:].any():
            continue
        det = SeasonalBaseline(features=used).fit(X[:cut], t[:cut])
        ctx = max(cut - 8, 0)
        seasonal = det.score_samples(X[ctx:], t[ctx:])[cut - ctx :]
        z = robust_z(X[:cut], used).score_samples(X[cut:])
        out[entity] = (roc_auc_score(y[cut:], seasonal), roc_auc_score(y[cut:], z))
    return out
