"""Time of day: active hours per (weekday/weekend, local hour), shrunk, updated as it scores."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from workers.engine.config import EngineConfig
from workers.engine.detectors.time_of_day import DAY_STARTS_AT, TimeOfDayProfile, day_types
from workers.engine.model import EntityModel, fit_entity_model
from workers.engine.window_evidence import EPISODE_NS
from workers.store.anomalies import documents

from ._synth import START, iso

pytestmark = pytest.mark.unit

# these request-only users have no logins: without this the seasonal baseline (for metric
# streams) would replace the time-of-day model
USER_CONFIG = EngineConfig(detectors=("robust_zscore", "time_of_day", "novelty"))

NS_H = 3_600_000_000_000
DAY_HOURS = range(8, 18)
NIGHT_HOURS = range(0, 6)


def _local_ns(hours: range, *, days: int = 42, weekend: bool = False) -> np.ndarray:
    """One event 5 minutes into each of ``hours`` (local) on each weekday (or weekend day)."""
    out = []
    for d in range(days):
        day = pd.Timestamp(START.replace(tzinfo=None)) + pd.Timedelta(days=d)
        if (day.weekday() >= 5) == weekend:
            out += [day.value + h * NS_H + 300_000_000_000 for h in hours]
    return np.array(out, dtype=np.int64)


def _events(
    user: str,
    hours: range,
    *,
    days: int = 28,
    offset_min: int | None = None,
    tz: str | None = None,
    shift_h: int = 0,
) -> list[dict[str, Any]]:
    """Two requests in each of ``hours`` local on weekdays; UTC = local - ``shift_h``."""
    out = []
    for d in range(days):
        day = START + timedelta(days=d)
        if day.weekday() >= 5:
            continue
        for h in hours:
            for m in (5, 20):
                t = day + timedelta(hours=h - shift_h, minutes=m)
                out.append(_request(user, t, f"{d}-{h}-{m}", offset_min=offset_min, tz=tz))
    return out


def _request(
    user: str, t: datetime, key: str, *, offset_min: int | None = None, tz: str | None = None
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "_id": f"{user}-{key}",
        "user_id": user,
        "timestamp": iso(t),
        "type": "request",
        "endpoint": "/api/items",
        "status_code": 200,
        "bytes_sent": 5000.0,
        "latency_ms": 80.0,
    }
    if offset_min is not None:
        event["utc_offset_minutes"] = offset_min
    if tz is not None:
        event["tz"] = tz
    return event


def test_a_day_workers_three_am_is_flagged_a_night_workers_is_not() -> None:
    day = TimeOfDayProfile.fit(_local_ns(DAY_HOURS))
    night = TimeOfDayProfile.fit(_local_ns(NIGHT_HOURS))
    weekday = np.array([0])
    assert day.pvalues(weekday, np.array([3]))[0] < 0.002 / 4  # alert level after Bonferroni
    assert night.pvalues(weekday, np.array([3]))[0] > 0.5
    assert night.pvalues(weekday, np.array([12]))[0] < 0.002 / 4
    assert day.pvalues(weekday, np.array([10]))[0] > 0.5
    assert day.usual_hours(0) == (8, 16) and day.usual_hours(1) is None


def test_the_hour_is_judged_within_its_day_type() -> None:
    """A weekday worker's first Saturday at 10:00 is not an alert, their Saturday 03:00 is."""
    office = np.full((2, 24), 0.01)
    office[:, 8:18] = 1.0  # a population of office workers
    day = TimeOfDayProfile.fit(_local_ns(DAY_HOURS), prior=office)
    weekday, weekend = np.array([0]), np.array([1])
    assert day.predictive()[1].sum() < 0.1  # a weekend hour is rare for this entity
    assert day.pvalues(weekend, np.array([10]))[0] > 0.2  # but 10:00 is its usual hour
    assert day.pvalues(weekend, np.array([3]))[0] < 0.002 / 4
    same_hour = day.pvalues(weekday, np.array([10]))[0]
    assert abs(day.pvalues(weekend, np.array([10]))[0] - same_hour) < 0.2


def test_weekend_hours_are_shrunk_toward_the_weekday_profile() -> None:
    day = TimeOfDayProfile.fit(_local_ns(DAY_HOURS))  # no weekend history at all
    weekend = np.array([1])
    p10, p03 = day.pvalues(weekend, np.array([10]))[0], day.pvalues(weekend, np.array([3]))[0]
    assert p10 > 100 * p03  # a Saturday at 10:00 keeps the weekday habit
    assert p10 > 0.002  # and is not an alert by itself
    # with weekend history of its own, the weekend profile follows it instead
    both = TimeOfDayProfile.fit(np.r_[_local_ns(DAY_HOURS), _local_ns(range(20, 24), weekend=True)])
    assert both.pvalues(weekend, np.array([22]))[0] > 0.1
    assert both.pvalues(weekend, np.array([22]))[0] > 100 * day.pvalues(weekend, np.array([22]))[0]


def test_sparse_history_is_shrunk_toward_the_population_prior() -> None:
    prior = np.zeros((2, 24))
    prior[:, 8:18] = 1.0
    few = _local_ns(range(9, 11), days=2)  # two weekdays, 09-11 only
    with_prior = TimeOfDayProfile.fit(few, prior=prior)
    uniform = TimeOfDayProfile.fit(few)
    assert with_prior.n_hours == 4
    # the population works 08-18: 16:00 is ordinary for a newcomer, 03:00 is not
    assert with_prior.pvalues(np.array([0]), np.array([16]))[0] > 0.05
    assert with_prior.pvalues(np.array([0]), np.array([3]))[0] < 1e-4
    assert uniform.pvalues(np.array([0]), np.array([3]))[0] > 0.05  # no prior: little to say


def test_observe_makes_the_second_occurrence_unsurprising() -> None:
    day = TimeOfDayProfile.fit(_local_ns(DAY_HOURS))
    seen = day.copy()
    before = seen.pvalues(np.array([0]), np.array([3]))[0]
    seen.observe(0, 3)
    after = seen.pvalues(np.array([0]), np.array([3]))[0]
    assert before < 0.002 / 4 < 0.002 < after and after > 50 * before
    assert day.counts[0, 3] == 0  # copy() is independent
    back = TimeOfDayProfile.from_state(seen.to_state())
    np.testing.assert_array_equal(back.predictive(), seen.predictive())


def test_pvalues_are_in_unit_interval_and_calibrated_on_the_predictive() -> None:
    rng = np.random.default_rng(0)
    ns = np.r_[_local_ns(DAY_HOURS, days=14), _local_ns(range(10, 14), days=14, weekend=True)]
    profile = TimeOfDayProfile.fit(ns[rng.random(len(ns)) < 0.6])
    q = profile.predictive()
    assert q.shape == (2, 24) and q.sum() == pytest.approx(1.0) and (q > 0).all()
    cells = rng.choice(48, size=50_000, p=q.ravel())
    p = profile.pvalues(cells // 24, cells % 24)
    assert ((p >= 0) & (p <= 1)).all()
    for a in (0.001, 0.01, 0.05, 0.1, 0.3, 0.5):
        assert np.mean(p <= a) <= a + 0.005


@pytest.fixture(scope="module")
def day_worker() -> EntityModel:
    """Works 08-18 local time on weekdays, in UTC+2 (events carry utc_offset_minutes)."""
    return fit_entity_model(
        "dana", _events("dana", DAY_HOURS, offset_min=120, shift_h=2), config=USER_CONFIG
    )


def test_entity_model_flags_three_am_local_once_with_a_local_time_reason(
    day_worker: EntityModel,
) -> None:
    night = START + timedelta(days=30, hours=1, minutes=10)  # Wed 01:10 UTC = 03:10 UTC+2
    events = [
        _request("dana", night, "n1", offset_min=120),
        _request("dana", night + timedelta(days=1), "n2", offset_min=120),
    ]
    result = day_worker.score(events)
    assert result.windows["flagged"].tolist() == [True, False]  # the second night is known
    assert result.windows["utc_offset_min"].tolist() == [120, 120]
    doc = documents(result.findings(model_id="m", model_version=1))[0]
    reason = next(r for r in doc["reasons"] if r["feature"] == "time_of_day")
    assert reason["text"].startswith("activity on Wed 03:10 local time (UTC+2): usual weekday")
    assert reason["text"].endswith("never at 03:00") and reason["p"] < 0.002
    assert reason["value"] == "03:10"
    # the same UTC instant in the middle of the day locally is ordinary
    noon = day_worker.score([_request("dana", night + timedelta(hours=10), "d1", offset_min=120)])
    assert not noon.windows["flagged"].any()


def test_local_time_comes_from_the_events_tz_or_the_entitys_home_zone() -> None:
    # Tokyo (UTC+9, no DST): 09-17 local is 00-08 UTC
    model = fit_entity_model(
        "kenji", _events("kenji", range(9, 17), tz="Asia/Tokyo", shift_h=9), config=USER_CONFIG
    )
    assert model.home_zone == "Asia/Tokyo"
    at_utc = START + timedelta(days=30, hours=1)  # 10:00 in Tokyo, 01:00 UTC
    with_tz = model.score([_request("kenji", at_utc, "a", tz="Asia/Tokyo")])
    no_tz = model.score([_request("kenji", at_utc, "b")])  # the home zone is assumed
    assert not with_tz.windows["flagged"].any() and not no_tz.windows["flagged"].any()
    assert with_tz.windows["utc_offset_min"].iloc[0] == no_tz.windows["utc_offset_min"].iloc[0]
    assert no_tz.windows["utc_offset_min"].iloc[0] == 540
    night = model.score([_request("kenji", at_utc + timedelta(hours=17), "c")])  # 03:00 Tokyo
    assert night.windows["flagged"].all()


def test_a_night_workers_three_am_is_not_flagged() -> None:
    model = fit_entity_model("nick", _events("nick", NIGHT_HOURS), config=USER_CONFIG)
    three = START + timedelta(days=30, hours=3, minutes=10)
    at_three = model.score([_request("nick", three, "x")]).windows
    assert not at_three["flagged"].any() and at_three["score_time_of_day"].iloc[0] < 0.5
    noon = model.score([_request("nick", three + timedelta(hours=9), "y")]).windows
    assert 1.0 - noon["score_time_of_day"].iloc[0] < 0.002  # noon is this one's odd hour


def test_a_night_belongs_to_the_day_it_began() -> None:
    """Day types start at ``DAY_STARTS_AT`` local: Friday's night shift is a weekday's work."""
    friday = pd.Timestamp("2026-03-06")  # a Friday
    keys = np.array(
        [(friday + pd.Timedelta(hours=h)).value // NS_H for h in (23, 24 + 3, 24 + 7, 72 + 3)]
    )  # Fri 23:00, Sat 03:00, Sat 07:00, Mon 03:00 (Sunday's night)
    assert DAY_STARTS_AT == 6
    assert day_types(keys).tolist() == [0, 0, 1, 1]


def test_a_first_night_of_unusual_hours_alerts_once(day_worker: EntityModel) -> None:
    """Hour after hour of a first night shift is one episode: its first window alerts."""
    start = START + timedelta(days=30, hours=20, minutes=10)  # Wed 22:10 local (UTC+2)
    night = [
        _request("dana", start + timedelta(hours=h), f"s{h}", offset_min=120) for h in range(6)
    ]
    windows = day_worker.score(night).windows
    assert windows["flagged"].tolist() == [True, False, False, False, False, False]
    assert (windows["score_time_of_day"].iloc[1:] == 0.0).all()  # no time evidence after it
    # the next night, more than EPISODE_NS later, is a new episode (the habit is still new)
    later = day_worker.score(
        [*night, _request("dana", start + timedelta(days=1, hours=1), "n2", offset_min=120)]
    ).windows
    assert EPISODE_NS == 12 * NS_H and later["score_time_of_day"].iloc[-1] > 0.0
