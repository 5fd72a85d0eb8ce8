"""Places for the scenarios: cities with an IANA zone, ISP networks (ASN) and hotel/airport Wi-Fi.

Unlike the demo's fixed offsets, these zones observe DST, and each city has two or three home
ISPs so a household's network is one of several plausible ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

MS_PER_MINUTE = 60_000
MS_PER_HOUR = 60 * MS_PER_MINUTE
MS_PER_DAY = 24 * MS_PER_HOUR


@dataclass(frozen=True)
class City:
    """A city: country code, region, IANA zone, ISP ASNs ("AS<n> <name>") and IP first octets."""

    country: str
    region: str
    city: str
    tz: str
    asns: tuple[str, ...]
    octets: tuple[int, ...]


CITIES: tuple[City, ...] = (
    City(
        "US",
        "New York",
        "New York",
        "America/New_York",
        ("AS7922 Comcast", "AS701 Verizon"),
        (24, 73),
    ),
    City(
        "US",
        "California",
        "Los Angeles",
        "America/Los_Angeles",
        ("AS20001 Charter", "AS7018 AT&T"),
        (47, 76),
    ),
    City("US", "Colorado", "Denver", "America/Denver", ("AS7922 Comcast", "AS209 Lumen"), (67, 98)),
    City(
        "MX",
        "Ciudad de Mexico",
        "Mexico City",
        "America/Mexico_City",
        ("AS8151 Telmex", "AS28403 Izzi"),
        (187, 189),
    ),
    City(
        "BR",
        "Sao Paulo",
        "Sao Paulo",
        "America/Sao_Paulo",
        ("AS28573 Claro", "AS18881 Vivo"),
        (177, 179),
    ),
    City(
        "GB",
        "England",
        "Manchester",
        "Europe/London",
        ("AS2856 BT", "AS5089 Virgin Media"),
        (81, 86),
    ),
    City(
        "ES", "Madrid", "Madrid", "Europe/Madrid", ("AS3352 Telefonica", "AS12479 Orange"), (83, 88)
    ),
    City(
        "PL",
        "Mazovia",
        "Warsaw",
        "Europe/Warsaw",
        ("AS5617 Orange Polska", "AS12741 Netia"),
        (31, 89),
    ),
    City(
        "SE",
        "Stockholm",
        "Stockholm",
        "Europe/Stockholm",
        ("AS3301 Telia", "AS8473 Bahnhof"),
        (78, 90),
    ),
    City(
        "ZA",
        "Gauteng",
        "Johannesburg",
        "Africa/Johannesburg",
        ("AS37457 Telkom", "AS36994 Vodacom"),
        (41, 105),
    ),
    City("IN", "Maharashtra", "Pune", "Asia/Kolkata", ("AS9829 BSNL", "AS24560 Airtel"), (49, 117)),
    City(
        "SG",
        "Singapore",
        "Singapore",
        "Asia/Singapore",
        ("AS4773 Singtel", "AS9506 Singtel Fibre"),
        (101, 116),
    ),
    City("JP", "Osaka", "Osaka", "Asia/Tokyo", ("AS2516 KDDI", "AS4713 NTT"), (110, 126)),
    City(
        "AU",
        "Victoria",
        "Melbourne",
        "Australia/Melbourne",
        ("AS1221 Telstra", "AS4804 Optus"),
        (1, 120),
    ),
    City(
        "NZ",
        "Auckland",
        "Auckland",
        "Pacific/Auckland",
        ("AS9500 One NZ", "AS4771 Spark"),
        (122, 125),
    ),
)

# Where attackers appear from (never a home city of the scenarios).
ATTACKER_CITIES: tuple[City, ...] = (
    City("KZ", "Almaty", "Almaty", "Asia/Almaty", ("AS9198 Kazakhtelecom",), (2, 95)),
    City("PK", "Punjab", "Lahore", "Asia/Karachi", ("AS17557 PTCL",), (39, 119)),
    City("EG", "Cairo", "Cairo", "Africa/Cairo", ("AS8452 TE Data",), (41, 156)),
    City("PE", "Lima", "Lima", "America/Lima", ("AS6147 Telefonica Peru",), (179, 190)),
    City("TH", "Bangkok", "Bangkok", "Asia/Bangkok", ("AS45758 TripleT",), (58, 171)),
)

# Networks a traveller uses away from home: hotel Wi-Fi, airport Wi-Fi, roaming carriers.
TRAVEL_ASNS: tuple[str, ...] = (
    "AS40676 Psychz (hotel Wi-Fi)",
    "AS20473 Boingo (airport Wi-Fi)",
    "AS16509 Amazon (hotel captive portal)",
    "AS3320 Deutsche Telekom roaming",
    "AS21928 T-Mobile roaming",
)


def local_midnight_ms(start_ms: int, day: int, tz: str) -> int:
    """UTC epoch ms of local midnight in zone ``tz`` on the date of scenario day ``day``."""
    date = datetime.fromtimestamp(start_ms // 1000 + day * 86_400, tz=UTC).date()
    local = datetime(date.year, date.month, date.day, tzinfo=ZoneInfo(tz))
    return int(local.timestamp()) * 1000


def utc_offset_minutes(ts_ms: int, tz: str) -> int:
    """The zone's UTC offset in minutes at epoch ms ``ts_ms``."""
    moment = datetime.fromtimestamp(ts_ms / 1000, tz=ZoneInfo(tz))
    offset = moment.utcoffset()
    return int(offset.total_seconds() // 60) if offset is not None else 0


def local_hour(ts_ms: int, tz: str) -> float:
    """Local hour of day (0-24, fractional) of epoch ms ``ts_ms`` in zone ``tz``."""
    moment = datetime.fromtimestamp(ts_ms / 1000, tz=ZoneInfo(tz))
    return moment.hour + moment.minute / 60


def local_weekday(ts_ms: int, tz: str) -> int:
    """Local weekday (Monday = 0) of epoch ms ``ts_ms`` in zone ``tz``."""
    return datetime.fromtimestamp(ts_ms / 1000, tz=ZoneInfo(tz)).weekday()
