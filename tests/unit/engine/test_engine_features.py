"""Feature building: normalized frames, active windows, login context."""

from __future__ import annotations

import pandas as pd
import pytest

from workers.engine.features import (
    WINDOW_FEATURES,
    events_frame,
    login_context,
    window_features,
)

from ._synth import CHROME_WIN, FIREFOX_LINUX, metric_stream

pytestmark = pytest.mark.unit


def test_events_frame_parses_any_iso_offset_and_epoch_and_counts_bad_rows() -> None:
    frame = events_frame(
        [
            {"_id": "a", "user_id": "u", "timestamp": "2026-03-01T14:00:00+02:00"},
            {"_id": "b", "user_id": "u", "timestamp": 1772373600},  # 2026-03-01T14:00Z
            {"_id": "c", "user_id": "u", "timestamp": "2026-03-01T12:30:00.000Z"},
            {"_id": "d", "user_id": "u", "timestamp": "not a time"},
        ]
    )
    assert list(frame["event_id"]) == ["a", "c", "b"]
    assert frame["timestamp"].iloc[0] == pd.Timestamp("2026-03-01T12:00:00Z")
    assert frame["timestamp"].iloc[2] == pd.Timestamp("2026-03-01T14:00:00Z")
    assert frame.attrs["dropped_events"] == 1


def test_window_features_cover_active_windows_only_with_counts() -> None:
    events = [
        {
            "_id": "1",
            "user_id": "u",
            "timestamp": "2026-03-02T09:01:00Z",
            "type": "login",
            "status_code": 401,
            "endpoint": "/login",
            "ip_address": "1.1.1.1",
        },
        {
            "_id": "2",
            "user_id": "u",
            "timestamp": "2026-03-02T09:02:00Z",
            "type": "login",
            "status_code": 200,
            "endpoint": "/login",
            "ip_address": "1.1.1.2",
        },
        {
            "_id": "3",
            "user_id": "u",
            "timestamp": "2026-03-02T09:03:00Z",
            "type": "request",
            "status_code": 503,
            "endpoint": "/a",
            "bytes_sent": 100,
            "latency_ms": 10,
        },
        {
            "_id": "4",
            "user_id": "u",
            "timestamp": "2026-03-02T15:00:00Z",
            "type": "request",
            "status_code": 200,
            "endpoint": "/a",
            "bytes_sent": 300,
            "latency_ms": 30,
        },
    ]
    w = window_features(events_frame(events), "15min", known_endpoints={"/login"})
    assert len(w) == 2  # six empty hours in between are not materialized
    first, second = w.iloc[0], w.iloc[1]
    assert (first["events"], first["logins"], first["failed_logins"]) == (3, 2, 1)
    assert first["failed_login_ratio"] == pytest.approx(0.5)
    assert (first["status_4xx"], first["status_5xx"]) == (1, 1)
    assert first["distinct_ips"] == 2 and first["new_endpoints"] == 1
    assert second["new_endpoints"] == 0  # /a was seen in the first window
    assert second["bytes_sum"] == 300 and second["latency_mean"] == 30
    # time of day is not a window feature any more: the time-of-day model scores it
    assert not {"hour_sin", "hour_cos", "hour_rarity", "weekday"} & set(w.columns)
    assert not {"hour_sin", "hour_cos", "hour_rarity", "weekday"} & set(WINDOW_FEATURES)
    assert list(w["event_ids"].iloc[0]) == ["1", "2", "3"]


def test_metric_only_stream_yields_latency_features_and_nan_elsewhere() -> None:
    w = window_features(events_frame(metric_stream(hours=2), "service"), "15min")
    assert len(w) == 8
    assert w["latency_mean"].notna().all() and w["events"].eq(3).all()
    assert w["status_4xx"].isna().all() and w["bytes_sum"].isna().all()
    assert w["logins"].isna().all()


def test_login_context_parses_user_agent_and_ip_prefixes() -> None:
    events: list[dict[str, object]] = [
        {
            "_id": "a",
            "user_id": "u",
            "timestamp": "2026-03-02T09:00:00Z",
            "type": "login",
            "ip_address": "203.0.113.77",
            "country": "us",
            "user_agent": CHROME_WIN,
            "utc_offset_minutes": -480,
        },
        {
            "_id": "b",
            "user_id": "u",
            "timestamp": "2026-03-02T10:00:00Z",
            "type": "LOGIN",
            "ip_address": "2001:db8:1:2:3::4",
            "user_agent": FIREFOX_LINUX,
            "tz": "Europe/Kyiv",
        },
        {"_id": "c", "user_id": "u", "timestamp": "2026-03-02T10:05:00Z", "type": "request"},
    ]
    ctx = login_context(events_frame(events))
    assert list(ctx["event_id"]) == ["a", "b"]
    a, b = ctx.iloc[0], ctx.iloc[1]
    assert (a["country"], a["ip_prefix"], a["browser"], a["os"]) == (
        "US",
        "203.0.113.0/24",
        "Chrome",
        "Windows",
    )
    assert (b["ip_prefix"], b["browser"], b["os"]) == ("2001:db8:1:2::/64", "Firefox", "Linux")
    assert a["local_hour"] == 1.0 and b["local_hour"] == 12.0
