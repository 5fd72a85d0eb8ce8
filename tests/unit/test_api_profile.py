"""The entity profile and timeline bins of the HTTP API use the model's own rules: devices and
browsers from `ua_families` (ua-parser), windows from `window_floor` and `COUCHWATCH_WINDOW`."""

from __future__ import annotations

from typing import Any

import pytest

from couchwatch.api.profile import bin_counts, summarize
from workers.engine.context import ua_families

pytestmark = pytest.mark.unit

IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
# an Edge on a Mac: the old substring rules said "Mac" and "Edge"; the model says device "Mac"
EDGE_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/123.0 Safari/537.36 Edg/123.0"
)
WINDOWS = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120.0"


def _event(minute: int, agent: str | None) -> dict[str, Any]:
    return {"timestamp": f"2026-03-01T12:{minute:02d}:00.000Z", "user_agent": agent}


def test_devices_and_browsers_are_the_ones_the_model_reads() -> None:
    agents = [IPHONE, IPHONE, EDGE_MAC, WINDOWS, "curl/8.4.0", None, ""]
    profile = summarize([_event(i, a) for i, a in enumerate(agents)])
    families = [ua_families(a) for a in agents if a]
    for key, index in (("browsers", 0), ("os", 1), ("devices", 2)):
        shown = {row["value"] for row in profile[key]}
        assert shown == {f[index] for f in families if f[index]}, key
    assert profile["devices"][0] == {"value": "iPhone", "share": 0.5}
    assert "Desktop" in {row["value"] for row in profile["devices"]}  # Windows: no device family


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        ("15min", ["2026-03-01T12:00:00.000Z", "2026-03-01T12:15:00.000Z"]),
        ("1h", ["2026-03-01T12:00:00.000Z"]),
    ],
)
def test_timeline_bins_follow_the_configured_window(window: str, expected: list[str]) -> None:
    events = [_event(m, None) for m in (1, 14, 16)]
    assert [b["window_start"] for b in bin_counts(events, window)] == expected
