"""Per-login context: where and on what a login happened.

``login_context`` returns one row per login event with the categorical fields the novelty
detector profiles (country, region, city, IP prefix, ASN, browser, OS, device family) plus the
local hour. User agents are parsed with ua-parser (cached per distinct string).
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd
from ua_parser import parse as parse_user_agent

CONTEXT_FIELDS: tuple[str, ...] = (
    "country",
    "region",
    "city",
    "ip_prefix",
    "asn",
    "browser",
    "os",
    "device",
    "os_version",
)
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


@lru_cache(maxsize=4096)
def ua_os_version(user_agent: str) -> str | None:
    """The OS family and major version of a user-agent string ("Windows 7", "iOS 17"), or None
    without a major version. Within one OS family this is the device fact that changes when
    someone else's machine logs in on the same browser; an upgrade changes it once a year."""
    result = parse_user_agent(user_agent)
    family = result.os.family if result.os else None
    major = result.os.major if result.os else None
    if family in (None, "Other") or not major:
        return None
    return f"{family} {major}"


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


def local_times_ns(
    stamps: pd.DatetimeIndex,
    tz: list[str | None],
    offset: np.ndarray,
    default_zone: str | None = None,
) -> np.ndarray:
    """Local wall-clock time of each event as epoch nanoseconds ("local UTC").

    The offset comes from ``utc_offset_minutes``, else the event's IANA ``tz``, else
    ``default_zone`` (the entity's usual zone), else UTC.
    """
    ns = stamps.as_unit("ns").asi8
    with np.errstate(invalid="ignore"):
        shift = np.nan_to_num(np.asarray(offset, dtype=float) * 60e9).astype(np.int64)
    out = ns + shift
    use_zone = np.isnan(np.asarray(offset, dtype=float))
    zones = [z if z else default_zone for z in tz]
    for name in {z for z, use in zip(zones, use_zone, strict=True) if use and z}:
        zone = _zone(name)
        rows = np.flatnonzero(use_zone & np.array([z == name for z in zones], dtype=bool))
        if zone is not None and len(rows):
            wall = stamps[rows].tz_convert(zone).tz_localize(None)
            out[rows] = wall.as_unit("ns").asi8
    return out


def _local_hours(stamps: pd.DatetimeIndex, tz: list[str | None], offset: np.ndarray) -> np.ndarray:
    """Local hour per login: UTC + ``utc_offset_minutes``, else the IANA zone, else UTC."""
    local = local_times_ns(stamps, tz, offset)
    return ((local // 3_600_000_000_000) % 24).astype(float)


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
    rows = np.flatnonzero([is_login_type(t) for t in frame["type"].to_numpy(dtype=object)])

    def column(name: str) -> list[str | None]:
        return [_text(v) for v in frame[name].to_numpy(dtype=object)[rows].tolist()]

    agents = column("user_agent")
    ua = [ua_families(s) if s else (None, None, None) for s in agents]
    stamps = pd.DatetimeIndex(frame["timestamp"]).take(rows)
    offset = frame["utc_offset_minutes"].to_numpy(dtype=float)[rows]
    values: dict[str, list[str | None]] = {
        "country": [c.upper() if c else None for c in column("country")],
        "region": column("region"),
        "city": column("city"),
        "ip_prefix": [ip_prefix(ip) if ip else None for ip in column("ip_address")],
        "asn": column("asn"),
        "browser": [u[0] for u in ua],
        "os": [u[1] for u in ua],
        "device": [u[2] for u in ua],
        "os_version": [ua_os_version(s) if s else None for s in agents],
    }
    out: dict[str, Any] = {
        "event_id": pd.Series(frame["event_id"].to_numpy(dtype=object)[rows], dtype=object),
        "timestamp": stamps,
    }
    out.update({name: pd.Series(values[name], dtype=object) for name in CONTEXT_FIELDS})
    out["local_hour"] = _local_hours(stamps, column("tz"), offset)
    return pd.DataFrame(out)
