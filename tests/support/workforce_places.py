"""Places, devices and endpoints of the workforce generator (``tests.support.workforce``).

A :class:`City` knows its residential, mobile and business networks, so a person's laptop at
home, phone on the go and desk at the office each show a different ASN of the same city.
"""

from __future__ import annotations

from typing import NamedTuple


class City(NamedTuple):
    """A city and the networks seen from it: (ASN, IPv4 prefix) per kind of access."""

    country: str
    region: str
    city: str
    tz: str
    home: tuple[str, str]
    mobile: tuple[str, str]
    office: tuple[str, str]


CALL_CENTRES = [
    City("PH", "Metro Manila", "Manila", "Asia/Manila", ("AS9299", "112.198"),
         ("AS132199", "49.145"), ("AS4775", "202.90")),
    City("RO", "Bucuresti", "Bucharest", "Europe/Bucharest", ("AS8708", "86.120"),
         ("AS12302", "5.12"), ("AS9050", "193.231")),
    City("ZA", "Gauteng", "Johannesburg", "Africa/Johannesburg", ("AS37457", "41.13"),
         ("AS29975", "197.80"), ("AS3741", "196.4")),
    City("MX", "Nuevo Leon", "Monterrey", "America/Monterrey", ("AS8151", "189.203"),
         ("AS28403", "187.190"), ("AS6503", "201.116")),
]  # fmt: skip
HOMES = [
    City("PT", "Lisboa", "Lisbon", "Europe/Lisbon", ("AS3243", "85.241"),
         ("AS12353", "94.60"), ("AS8657", "193.136")),
    City("PL", "Mazowieckie", "Warsaw", "Europe/Warsaw", ("AS5617", "83.24"),
         ("AS12912", "31.60"), ("AS8374", "195.117")),
    City("CA", "British Columbia", "Vancouver", "America/Vancouver", ("AS852", "24.86"),
         ("AS812", "174.88"), ("AS577", "142.114")),
    City("US", "Texas", "Austin", "America/Chicago", ("AS11427", "70.112"),
         ("AS21928", "172.58"), ("AS7018", "12.45")),
    City("KE", "Nairobi", "Nairobi", "Africa/Nairobi", ("AS33771", "105.160"),
         ("AS36866", "41.90"), ("AS37061", "196.201")),
    City("IN", "Maharashtra", "Pune", "Asia/Kolkata", ("AS45609", "157.32"),
         ("AS55836", "49.36"), ("AS9498", "125.16")),
    City("NZ", "Auckland", "Auckland", "Pacific/Auckland", ("AS9500", "125.239"),
         ("AS4771", "49.224"), ("AS4648", "203.109")),
    City("IE", "Leinster", "Dublin", "Europe/Dublin", ("AS5466", "86.40"),
         ("AS15502", "89.19"), ("AS1213", "193.1")),
]  # fmt: skip
ABROAD = [  # trips and relocations (long stays) of benign users
    City("CO", "Bogota DC", "Bogota", "America/Bogota", ("AS10620", "181.49"),
         ("AS27831", "191.95"), ("AS14080", "200.69")),
    City("TH", "Bangkok", "Bangkok", "Asia/Bangkok", ("AS7470", "171.96"),
         ("AS131445", "49.228"), ("AS4618", "203.151")),
    City("ES", "Canarias", "Las Palmas", "Atlantic/Canary", ("AS3352", "83.44"),
         ("AS12430", "81.45"), ("AS766", "130.206")),
    City("JP", "Osaka", "Osaka", "Asia/Tokyo", ("AS17676", "126.48"),
         ("AS9605", "1.66"), ("AS2907", "133.1")),
]  # fmt: skip
VPN_EXITS = [  # (country, region, city, tz of the exit, ASN, prefix); devices keep their own tz
    ("NL", "Noord-Holland", "Amsterdam", "Europe/Amsterdam", "AS9009", "185.107"),
    ("SE", "Stockholm", "Stockholm", "Europe/Stockholm", "AS42708", "146.70"),
    ("CH", "Zurich", "Zurich", "Europe/Zurich", "AS51852", "179.43"),
    ("US", "Virginia", "Ashburn", "America/New_York", "AS16509", "3.88"),
]
HOSTILE = [  # attacker origins: countries and networks no benign user touches
    ("RU", "Moscow", "Moscow", "Europe/Moscow", "AS8359", "95.165"),
    ("CN", "Guangdong", "Shenzhen", "Asia/Shanghai", "AS4134", "113.87"),
    ("NG", "Lagos", "Lagos", "Africa/Lagos", "AS29465", "105.112"),
    ("BR", "Ceara", "Fortaleza", "America/Fortaleza", "AS28573", "177.37"),
]
HOSTING = [  # credential-stuffing sources: cheap servers, many addresses
    ("DE", "Hessen", "Frankfurt", "Europe/Berlin", "AS24940", "88.198"),
    ("US", "Oregon", "Boardman", "America/Los_Angeles", "AS14618", "54.187"),
    ("SG", "Singapore", "Singapore", "Asia/Singapore", "AS14061", "139.59"),
]
LAPTOPS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:127.0) Gecko/20100101 Firefox/127.0",
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0",
]
PHONES = [
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 13; Pixel 7a) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/125.0.0.0 Mobile Safari/537.36",
]
NEW_PHONES = [  # the benign "new phone" a user switches to
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/18.0 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 15; Pixel 9 Pro) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/128.0.0.0 Mobile Safari/537.36",
]
ATTACKER_AGENTS = [
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/119.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 6.1; Win64; x64; rv:102.0) Gecko/20100101 Firefox/102.0",
]
STUFFING_AGENTS = ["python-requests/2.31.0", "curl/8.4.0", "Go-http-client/1.1"]
ENDPOINTS = {  # per kind of work: the pool a person draws their habits from
    "agent": ["/crm/ticket", "/crm/customer", "/crm/search", "/kb/article", "/telephony/queue",
              "/crm/notes"],
    "desk": ["/mail/inbox", "/docs/view", "/docs/edit", "/calendar", "/chat", "/crm/report"],
    "phone": ["/mail/inbox", "/chat", "/calendar"],
    "eng": ["/git/repo", "/git/pull", "/ci/builds", "/docs/view", "/chat", "/tickets"],
    "ops": ["/ops/pager", "/ops/dashboards", "/ops/logs", "/ops/runbook"],
    "hr": ["/hr/timesheet", "/hr/payslip", "/mail/inbox", "/docs/view"],
}  # fmt: skip
TEAM_ENDPOINTS = {"agent": "/crm/callback", "desk": "/wiki/handbook", "eng": "/deploy/preview"}
EXFIL_ENDPOINTS = ["/files/export", "/reports/download", "/crm/export"]
SCAN_ENDPOINTS = [
    "/admin", "/admin/users", "/admin/config", "/api/v1/users", "/api/internal/keys",
    "/.env", "/.git/config", "/actuator/env", "/backup.zip", "/debug/vars", "/graphql",
    "/wp-login.php", "/server-status", "/api/v2/tokens", "/hr/salaries", "/billing/cards",
    "/phpmyadmin", "/console", "/api/swagger.json", "/internal/metrics",
]  # fmt: skip
