"""Static catalogues the demo scenario draws from: places, user agents, endpoints.

Time zones are fixed UTC offsets in hours (no DST) so the demo needs no tz database.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Place:
    """A city with its country code, region, fixed UTC offset (hours) and IP first octets."""

    country: str
    region: str
    city: str
    utc_offset: float
    octets: tuple[int, ...]


HOME_PLACES: tuple[Place, ...] = (
    Place("US", "New York", "New York", -5, (24, 67, 73)),
    Place("US", "California", "San Francisco", -8, (50, 76, 98)),
    Place("US", "Illinois", "Chicago", -6, (68, 71, 99)),
    Place("US", "Texas", "Austin", -6, (70, 72, 104)),
    Place("US", "Washington", "Seattle", -8, (50, 67, 174)),
    Place("CA", "Ontario", "Toronto", -5, (69, 99, 142)),
    Place("GB", "England", "London", 0, (81, 86, 90)),
    Place("DE", "Berlin", "Berlin", 1, (84, 87, 91)),
    Place("FR", "Ile-de-France", "Paris", 1, (82, 86, 90)),
    Place("NL", "North Holland", "Amsterdam", 1, (77, 83, 145)),
    Place("IN", "Karnataka", "Bengaluru", 5.5, (49, 106, 117)),
    Place("JP", "Tokyo", "Tokyo", 9, (110, 126, 153)),
    Place("AU", "New South Wales", "Sydney", 10, (1, 101, 120)),
    Place("BR", "Sao Paulo", "Sao Paulo", -3, (177, 179, 189)),
)

# Places attackers appear from; always in a different country from the victim's home.
FOREIGN_PLACES: tuple[Place, ...] = (
    Place("UA", "Kyiv City", "Kyiv", 2, (46, 91, 176)),
    Place("RU", "Moscow", "Moscow", 3, (5, 37, 95)),
    Place("NG", "Lagos", "Lagos", 1, (102, 105, 197)),
    Place("VN", "Hanoi", "Hanoi", 7, (14, 113, 171)),
    Place("CN", "Guangdong", "Shenzhen", 8, (27, 113, 183)),
    Place("RO", "Bucharest", "Bucharest", 2, (79, 86, 188)),
    Place("ID", "Jakarta", "Jakarta", 7, (36, 103, 180)),
    Place("TR", "Istanbul", "Istanbul", 3, (78, 88, 176)),
)

# Real browser user agents, keyed by a short device name.
USER_AGENTS: dict[str, str] = {
    "chrome_windows": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
    ),
    "edge_windows": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.67"
    ),
    "safari_macos": (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.4.1 Safari/605.1.15"
    ),
    "chrome_macos": (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
    ),
    "firefox_linux": "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "safari_iphone": (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1"
    ),
    "chrome_android": (
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36"
    ),
    "firefox_windows": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0"
    ),
    "python_requests": "python-requests/2.31.0",
}

DESKTOP_DEVICES: tuple[str, ...] = (
    "chrome_windows",
    "edge_windows",
    "safari_macos",
    "chrome_macos",
    "firefox_linux",
)
PHONE_DEVICES: tuple[str, ...] = ("safari_iphone", "chrome_android")
# Devices an account-takeover attacker uses; chosen so it is new to the victim.
ATTACKER_DEVICES: tuple[str, ...] = ("firefox_windows", "firefox_linux", "chrome_windows")

# Endpoint → (median bytes, median latency ms). Users pick a personal subset.
ENDPOINTS: dict[str, tuple[float, float]] = {
    "/api/orders": (4_000, 80),
    "/api/orders/{id}": (1_500, 45),
    "/api/customers": (6_000, 95),
    "/api/customers/{id}": (2_000, 50),
    "/api/invoices": (5_000, 110),
    "/api/products": (8_000, 70),
    "/api/inventory": (7_000, 120),
    "/api/tickets": (3_000, 60),
    "/api/messages": (2_500, 40),
    "/api/search": (9_000, 150),
    "/api/reports/weekly": (40_000, 400),
    "/api/files/download": (250_000, 300),
    "/dashboard": (30_000, 200),
    "/api/profile": (1_200, 30),
}
SENSITIVE_ENDPOINTS: dict[str, tuple[float, float]] = {
    "/admin/export": (5_000_000, 2_500),
    "/admin/users": (60_000, 300),
    "/api/customers/export": (3_000_000, 1_800),
    "/admin/api-keys": (4_000, 90),
}
EXFIL_ENDPOINTS: tuple[str, ...] = ("/api/files/download", "/api/reports/weekly", "/api/customers")
LOGIN_ENDPOINT = "/login"
