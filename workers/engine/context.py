"""Per-login context: where and on what a login happened.

``login_context`` returns one row per login event with the categorical fields the novelty
detector profiles (country, region, city, IP prefix, ASN, browser, OS, device family) plus the
local hour. User agents are parsed with ua-parser (cached per distinct string).
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd
from ua_parser import parse as parse_user_agent

CONTEXT_FIELDS: tuple[str, ...] = (
    "country", "region", "city", "ip_prefix", "asn", "browser", "os", "device",
)  # fmt: skip
"""Categorical login-context fields, in profile order."""

CONTEXT_COLUMNS: tuple[str, ...] = ("event_id", "timestamp", *CONTEXT_FIELDS, "local_hour")


@lru_cache(maxsize=4096)
def ua_families(user_agent: str) -> tuple[str | None, str | None, str | None]:
    """Return (browser, os, device) family names of a user-agent string (None when unknown)."""
    result = parse_user_agent(user_agent)
    browser = result.user_agent.family if result.user_agent else None
    os_family = result.os.family if result.os else None
    device = result.device.family if result.device else None
    return (
        None if browser in (None, "Other") else browser,
        None if os_family in (None, "Other") else os_family,
        device if device not in (None, "Other") else ("Desktop" if os_family else None),
    )


@lru_cache(maxsize=8192)
def ip_prefix(ip: str) -> str | None:
    """Return the /24 (IPv4) or /64 (IPv6) network of ``ip`` as text, or None if invalid."""
    try:
        addr = ipaddress.ip_address(ip.strip())
    except ValueError:
        return None
    bits = 24 if addr.version == 4 else 64
    return str(ipaddress.ip_network(f"{addr}/{bits}", strict=False))


@lru_cache(maxsize=512)
def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _local_hour(ts: pd.Timestamp, tz: str | None, offset_minutes: float) -> float:
    if not np.isnan(offset_minutes):
        local = ts + pd.Timedelta(minutes=float(offset_minutes))
        return float(local.hour)
    zone = _zone(tz) if tz else None
    return float(ts.tz_convert(zone).hour if zone else ts.hour)


def is_login_type(value: object) -> bool:
    """True when an event ``type`` value denotes a login (case-insensitive)."""
    return isinstance(value, str) and value.lower() == "login"


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def login_context(frame: pd.DataFrame) -> pd.DataFrame:
    """Return one row per login event of an :func:`~workers.engine.features.events_frame`.

    Columns: ``event_id``, ``timestamp`` (UTC), :data:`CONTEXT_FIELDS` (str or None) and
    ``local_hour`` (0-23; from ``utc_offset_minutes``, else IANA ``tz``, else UTC).
    """
    if frame.empty:
        return pd.DataFrame(columns=list(CONTEXT_COLUMNS))
    logins = frame.loc[[is_login_type(t) for t in frame["type"]]]
    ua = [ua_families(s) if _text(s) else (None, None, None) for s in logins["user_agent"]]
    out = pd.DataFrame(
        {
            "event_id": logins["event_id"].to_numpy(),
            "timestamp": logins["timestamp"].to_numpy(),
            "country": [c.upper() if (c := _text(v)) else None for v in logins["country"]],
            "region": [_text(v) for v in logins["region"]],
            "city": [_text(v) for v in logins["city"]],
            "ip_prefix": [ip_prefix(ip) if _text(ip) else None for ip in logins["ip_address"]],
            "asn": [_text(v) for v in logins["asn"]],
            "browser": [u[0] for u in ua],
            "os": [u[1] for u in ua],
            "device": [u[2] for u in ua],
            "local_hour": [
                _local_hour(ts, _text(tz), off)
                for ts, tz, off in zip(
                    logins["timestamp"],
                    logins["tz"],
                    logins["utc_offset_minutes"],
                    strict=True,
                )
            ],
        }
    )
    out["timestamp"] = pd.to_datetime(out["timestamp"], utc=True)
    for name in CONTEXT_FIELDS:
        out[name] = pd.Series([_text(v) for v in out[name]], index=out.index, dtype=object)
    return out.reset_index(drop=True)
