"""Reasons in words: which features made a window or a login unusual, and by how much.

Each reason is ``{"feature", "value", "expected", "text"}`` with one sentence a person can read
without help, e.g. ``"country UA never seen in 212 logins (usual: US 98%)"``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .detectors.novelty import FieldSurprise

Reason = dict[str, Any]
MIN_Z = 3.0
MIN_NATS = 0.5
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
UNITS = {"bytes_sum": "bytes", "bytes_max": "bytes", "latency_mean": "ms", "latency_p95": "ms"}
LABELS = {
    "events": "events in the window",
    "logins": "logins",
    "failed_logins": "failed logins (401/403)",
    "failed_login_ratio": "failed-login ratio",
    "status_4xx": "4xx responses",
    "status_5xx": "5xx responses",
    "ratio_4xx": "4xx ratio",
    "ratio_5xx": "5xx ratio",
    "bytes_sum": "bytes_sent total",
    "bytes_max": "bytes_sent max",
    "latency_mean": "mean latency",
    "latency_p95": "p95 latency",
    "distinct_endpoints": "distinct endpoints",
    "distinct_ips": "distinct IPs",
}


def entity_noun(entity_field: str) -> str:
    """Return the word for an entity in sentences: user, service or entity."""
    if entity_field.startswith("user"):
        return "user"
    return "service" if entity_field == "service" else "entity"


def _fmt(value: float) -> str:
    if abs(value) >= 1e6:
        return f"{value / 1e6:.1f}M"
    if abs(value) >= 1e4:
        return f"{value / 1e3:.0f}k"
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.2f}"


def _usual_hours(hours: np.ndarray) -> str:
    total = hours.sum()
    if total <= 0:
        return "none yet"
    busy = [h for h in range(24) if hours[h] / total >= 0.02]
    if not busy:
        return "spread over the day"
    return f"{min(busy):02d}-{max(busy) + 1:02d} UTC" if len(busy) < 24 else "all day"


def window_reasons(
    values: Mapping[str, float],
    z: Mapping[str, float],
    *,
    center: Mapping[str, float],
    hour_counts: Sequence[float],
    weekday_counts: Sequence[float],
    window_start: Any,
    noun: str,
    limit: int = 3,
) -> list[Reason]:
    """Return up to ``limit`` reasons for a window, strongest first (always at least one).

    ``z`` holds directional robust z-scores (positive = unusual direction) against this
    entity's own medians ``center``.
    """
    reasons: list[tuple[float, Reason]] = []
    hour_z = max(z.get("hour_sin", 0.0), z.get("hour_cos", 0.0), z.get("hour_rarity", 0.0))
    hours = np.asarray(hour_counts, dtype=float)
    if hour_z >= MIN_Z and hours.sum() > 0:
        hhmm = f"{window_start.hour:02d}:{window_start.minute:02d}"
        usual = _usual_hours(hours)
        share = hours[window_start.hour] / hours.sum()
        text = (
            f"activity at {hhmm} UTC, an hour with {share:.0%} of this {noun}'s history "
            f"(usual: {usual})"
        )
        reasons.append((hour_z, {"feature": "hour", "value": hhmm, "expected": usual,
                                 "text": text}))  # fmt: skip
    days = np.asarray(weekday_counts, dtype=float)
    if z.get("weekday", 0.0) >= MIN_Z and days.sum() > 0:
        day = WEEKDAYS[window_start.weekday()]
        usual_days = ", ".join(WEEKDAYS[i] for i in range(7) if days[i] / days.sum() >= 0.05)
        text = f"activity on {day}, rare for this {noun} (usual: {usual_days})"
        reasons.append((z["weekday"], {"feature": "weekday", "value": day,
                                       "expected": usual_days, "text": text}))  # fmt: skip
    for feature, score in z.items():
        if feature in ("hour_sin", "hour_cos", "hour_rarity", "weekday") or score < MIN_Z:
            continue
        value, median = float(values[feature]), float(center[feature])
        reasons.append((score, _numeric_reason(feature, value, median, score, noun)))
    if not reasons:
        feature = max(z, key=lambda k: z[k]) if z else "events"
        value = float(values.get(feature, np.nan))
        median = float(center.get(feature, np.nan))
        text = (
            f"unusual combination of features for this {noun}; closest: {feature} "
            f"{_fmt(value)} (median {_fmt(median)})"
        )
        return [{"feature": feature, "value": value, "expected": median, "text": text}]
    reasons.sort(key=lambda item: -item[0])
    return [r for _, r in reasons[:limit]]


def _numeric_reason(feature: str, value: float, median: float, z: float, noun: str) -> Reason:
    label = LABELS.get(feature, feature)
    unit = f" {UNITS[feature]}" if feature in UNITS else ""
    if feature == "new_endpoints":
        text = f"{int(value)} endpoint(s) never used before by this {noun}"
    elif median > 0 and value / median >= 2:
        text = (
            f"{label} {_fmt(value)}{unit} is {value / median:.0f}x this {noun}'s median "
            f"({_fmt(median)}{unit})"
        )
    else:
        text = f"{label} {_fmt(value)}{unit} vs this {noun}'s median {_fmt(median)}{unit}"
        text += f" ({z:.0f} robust deviations)"
    return {"feature": feature, "value": value, "expected": median, "text": text}


LOGIN_GROUPS: dict[str, str] = {
    "country": "place", "region": "place", "city": "place",
    "ip_prefix": "network", "asn": "network",
    "browser": "device", "os": "device", "device": "device",
}  # fmt: skip


def login_reasons(
    surprises: Sequence[FieldSurprise], *, weights: Mapping[str, float], limit: int = 3
) -> list[Reason]:
    """Return up to ``limit`` reasons for a login, strongest first (always at least one).

    Fields are ranked by weighted surprise; the strongest field of each group (place, network,
    device) comes first so one reason does not hide another kind of change. Region and city are
    left out when the country itself is new (they add nothing).
    """
    strong = [s for s in surprises if s.nats >= MIN_NATS]
    if any(s.field == "country" and s.count == 0 for s in strong):
        strong = [s for s in strong if s.field not in ("region", "city")]
    strong.sort(key=lambda s: -weights.get(s.field, 1.0) * s.nats)
    if not strong:
        strong = sorted(surprises, key=lambda s: -weights.get(s.field, 1.0) * s.nats)[:1]
    leaders: list[FieldSurprise] = []
    seen: set[str] = set()
    for s in strong:
        group = LOGIN_GROUPS.get(s.field, s.field)
        if group not in seen:
            seen.add(group)
            leaders.append(s)
    ordered = leaders + [s for s in strong if s not in leaders]
    return [_login_reason(s) for s in ordered[:limit]]


def _login_reason(s: FieldSurprise) -> Reason:
    usual = f"{s.mode} {s.mode_share:.0%}" if s.mode is not None else "nothing yet"
    n = round(s.total)
    if s.count <= 0:
        text = f"{s.field} {s.value} never seen in {n} logins (usual: {usual})"
    else:
        text = (
            f"{s.field} {s.value} seen in {round(s.count)} of {n} logins "
            f"({s.count / max(s.total, 1):.0%}; usual: {usual})"
        )
    return {"feature": s.field, "value": s.value, "expected": usual, "text": text}
