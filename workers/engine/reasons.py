"""Reasons in words: which features made a window or a login unusual, and by how much.

Each reason is ``{"feature", "value", "expected", "text", "p"}`` with one sentence a person can
read without help, always against this entity's own history, e.g. ``"country UA never seen in
212 logins of this user; usual US 98%"``, and ``p`` the tail probability of that fact alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .detectors.novelty import FIELD_GROUP, FieldSurprise, LoginNovelty
from .detectors.rates import RATES, rate_reason
from .detectors.time_of_day import DAY_TYPES, day_types

if TYPE_CHECKING:
    from .model import EntityModel

Reason = dict[str, Any]
MAX_REASON_P = 0.05
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


def _hours(span: tuple[int, int]) -> str:
    return f"{span[0]:02d}-{span[1] if span[1] else 24:02d}"


def _offset_text(minutes: int) -> str:
    if minutes == 0:
        return "UTC"
    sign = "+" if minutes > 0 else "-"
    h, m = divmod(abs(minutes), 60)
    return f"UTC{sign}{h}" + (f":{m:02d}" if m else "")


def time_reason(model: EntityModel, row: Mapping[str, Any], p: float, noun: str) -> Reason:
    """The time-of-day reason of a window: local time, day type, the entity's usual hours."""
    profile = model.time
    local_ns = int(row["local_ns"])
    key = local_ns // 3_600_000_000_000
    hour = int(key % 24)
    day = int((key // 24 + 3) % 7)  # the calendar day, 1970-01-01 was a Thursday
    day_type = int(day_types(np.array([key]))[0])  # a night belongs to the day before
    kind = DAY_TYPES[day_type]
    stamp = pd.Timestamp(local_ns, unit="ns")
    where = _offset_text(int(row["utc_offset_min"]))
    when = f"{WEEKDAYS[day]} {stamp:%H:%M} local time ({where})"
    assert profile is not None
    own = profile.counts[day_type]
    total = own.sum()
    span = profile.usual_hours(day_type)
    if span is None or total < 1:
        other = profile.usual_hours(1 - day_type)
        usual = f"no {kind} activity in {round(profile.n_hours)} active hours" + (
            f" (usual {DAY_TYPES[1 - day_type]} hours {_hours(other)})" if other else ""
        )
    else:
        at = own[hour]
        usual = (
            f"usual {kind} hours {_hours(span)} (80% of {round(total)} active {kind} hours), "
            + (f"{round(at)} of them at {hour:02d}:00" if at >= 1 else f"never at {hour:02d}:00")
        )
    text = f"activity on {when}: {usual}"
    return {
        "feature": "time_of_day",
        "value": f"{stamp:%H:%M}",
        "expected": usual,
        "text": text,
        "p": float(p),
    }


def window_reasons(
    model: EntityModel,
    x: np.ndarray,
    row: Mapping[str, Any],
    *,
    expected: Mapping[str, float],
    noun: str,
    limit: int = 3,
) -> list[Reason]:
    """Reasons for one flagged window, rarest first (always at least one).

    Each reason carries ``p``, the tail probability of that one fact under this entity's own
    (population-shrunk) history.
    """
    found: list[Reason] = []
    if model.zscore is not None and model.features:
        p = model.zscore.feature_pvalues(x[None, :])[0] * model.zscore.tests
        z = model.zscore.z_scores(x[None, :])[0]

        def numeric(j: int, p_j: float) -> Reason:
            f = model.features[j]
            n = model.n_train_windows
            return _numeric_reason(f, float(x[j]), float(expected[f]), float(z[j]), n, noun, p_j)

        hits = [j for j in range(len(model.features)) if p[j] <= MAX_REASON_P]
        found.extend(numeric(j, float(p[j])) for j in hits)
        if not found:
            j = int(np.argmin(p))
            found.append(numeric(j, float(min(p[j], 1.0))))
    if model.rates is not None:
        for name, pv in model.rates.feature_pvalues(pd.DataFrame([dict(row)])).items():
            p_rate = float(pv[0]) * len(model.rates.rates)
            if p_rate <= MAX_REASON_P:
                k_col, n_col = RATES[name]
                found.append(
                    rate_reason(
                        name,
                        float(row[k_col]),
                        float(row[n_col]),
                        model.rates.rates[name],
                        p_rate,
                        noun,
                    )
                )
    if model.seasonal is not None and "score_seasonal" in row:
        p_seasonal = 1.0 - float(row["score_seasonal"])
        if p_seasonal <= MAX_REASON_P or not found:
            found.append(seasonal_reason(model, x, row, p_seasonal, noun))
    for name in model.detectors:
        score = float(row.get(f"score_{name}", 0.0))
        if 1.0 - score <= MAX_REASON_P:
            found.append(
                {
                    "feature": name,
                    "value": score,
                    "expected": None,
                    "p": 1.0 - score,
                    "text": f"{name} finds this window's combination of features unusual "
                    f"for this {noun} (more than {score:.2%} of its history)",
                }
            )
    p_session = 1.0 - float(row.get("score_session", 0.0))
    if p_session <= MAX_REASON_P and (not found or p_session < min(r["p"] for r in found)):
        strongest = found[0]["text"] if found else "several measures"
        found.append(
            {
                "feature": "session",
                "value": None,
                "expected": None,
                "p": p_session,
                "text": f"several unusual windows in a row for this {noun} (together "
                f"p={p_session:.1e}); in this one: {strongest}",
            }
        )
    if model.time is not None and "score_time_of_day" in row:
        p_time = 1.0 - float(row["score_time_of_day"])
        if p_time <= MAX_REASON_P or not found:
            found.append(time_reason(model, row, p_time, noun))
    found.sort(key=lambda r: r["p"])
    return found[:limit]


def seasonal_reason(
    model: EntityModel, x: np.ndarray, row: Mapping[str, Any], p: float, noun: str
) -> Reason:
    """The seasonal reason: a measure against this entity's usual for that hour of the week."""
    assert model.seasonal is not None
    start = pd.Timestamp(row["window_start"])
    feature, value, usual, z = model.seasonal.explain(x[None, :], np.array([start.value]))[0][0]
    label = LABELS.get(feature, feature)
    unit = f" {UNITS[feature]}" if feature in UNITS else ""
    when = f"{WEEKDAYS[start.weekday()]} {start:%H}:00 UTC"
    text = (
        f"{label} {_fmt(value)}{unit} vs this {noun}'s usual {_fmt(usual)}{unit} for {when} "
        f"({z:+.1f} robust deviations from its weekly rhythm)"
    )
    return {"feature": feature, "value": value, "expected": usual, "text": text, "p": p}


def _numeric_reason(
    feature: str, value: float, median: float, z: float, n: int, noun: str, p: float
) -> Reason:
    label = LABELS.get(feature, feature)
    unit = f" {UNITS[feature]}" if feature in UNITS else ""
    basis = f"from {n} active windows" if n else "no history yet: the population's"
    if feature == "new_endpoints":
        text = f"{int(value)} endpoint(s) never used before by this {noun}"
    elif median > 0 and value / median >= 2:
        text = (
            f"{label} {_fmt(value)}{unit} is {value / median:.0f}x this {noun}'s usual "
            f"{_fmt(median)}{unit} ({basis})"
        )
    else:
        text = (
            f"{label} {_fmt(value)}{unit} vs this {noun}'s usual {_fmt(median)}{unit} "
            f"({z:.1f} robust deviations; {basis})"
        )
    return {"feature": feature, "value": value, "expected": median, "text": text, "p": p}


def login_reasons(detail: LoginNovelty | None, *, noun: str, limit: int = 3) -> list[Reason]:
    """Reasons for one flagged login: one per independent fact (place, network, device,
    travel), rarest first; region and city are left out when the country itself is new."""
    if detail is None:
        return [
            {
                "feature": "login",
                "value": None,
                "expected": None,
                "p": 1.0,
                "text": f"login unusual for this {noun}",
            }
        ]
    best: dict[str, FieldSurprise] = {}
    new_country = any(s.field == "country" and s.count == 0 for s in detail.surprises)
    for s in detail.surprises:
        if new_country and s.field in ("region", "city"):
            continue
        group = FIELD_GROUP.get(s.field, s.field)
        if group not in best or s.p < best[group].p:
            best[group] = s
    found: list[Reason] = [_login_reason(s, noun) for s in best.values()]
    if detail.travel is not None:
        t = detail.travel
        seen = "never" if not t["seen"] else f"{t['seen']} time(s)"
        found.append(
            {
                "feature": "travel",
                "value": f"{t['from']}->{t['to']}",
                "expected": None,
                "p": detail.p,
                "text": f"login from {t['to']} {t['minutes']} min after a login from "
                f"{t['from']}; a change of country within 2 h happened {seen} in "
                f"{t['chances']} such gaps of this {noun}'s history",
            }
        )
    found.sort(key=lambda r: r["p"])
    strong = [r for r in found if r["p"] <= MAX_REASON_P]
    return (strong or found[:1])[:limit]


FIELD_WORDS = {"os_version": "OS version"}


def _login_reason(s: FieldSurprise, noun: str) -> Reason:
    usual = f"usual {s.mode} {s.mode_share:.0%}" if s.mode is not None else "no history yet"
    n = round(s.total)
    name = FIELD_WORDS.get(s.field, s.field)
    if s.count <= 0:
        text = f"{name} {s.value} never seen in {n} logins of this {noun}; {usual}"
    else:
        text = (
            f"{name} {s.value} seen in {round(s.count)} of {n} logins "
            f"({s.count / max(s.total, 1):.0%}); {usual}"
        )
    return {"feature": s.field, "value": s.value, "expected": usual, "text": text, "p": s.p}
