"""Webhook signatures: HMAC-SHA256 over `timestamp + "." + body`, with a timestamp against replays.

Header: ``X-Couchwatch-Signature: t=<unix seconds>,v1=<hex digest>``. A receiver recomputes the
digest with the shared secret and rejects a request whose timestamp is further than
`tolerance_s` from its own clock (a captured request cannot be replayed later).

>>> header = sign("s3cret", b'{"a":1}', timestamp=1700000000)
>>> header.startswith("t=1700000000,v1=")
True
>>> verify_signature("s3cret", header, b'{"a":1}', now=1700000010, tolerance_s=300)
True
>>> verify_signature("s3cret", header, b'{"a":1}', now=1700009999, tolerance_s=300)
False
"""

from __future__ import annotations

import hashlib
import hmac

HEADER = "X-Couchwatch-Signature"
SCHEME = "v1"
DEFAULT_TOLERANCE_S = 300.0


def _digest(secret: str | bytes, timestamp: int, body: bytes) -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def sign(secret: str | bytes, body: bytes, *, timestamp: int) -> str:
    """Return the signature header value `t=<timestamp>,v1=<hex>` for `body` sent at `timestamp`."""
    return f"t={timestamp},{SCHEME}={_digest(secret, timestamp, body)}"


def parse_header(header: str) -> tuple[int, list[str]] | None:
    """Return (timestamp, v1 digests) from a header value, or None when it is malformed."""
    timestamp: int | None = None
    digests: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                return None
        elif key == SCHEME and value:
            digests.append(value)
    if timestamp is None or not digests:
        return None
    return timestamp, digests


def verify_signature(
    secret: str | bytes,
    header: str | None,
    body: bytes,
    now: float,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
) -> bool:
    """True when `header` signs exactly `body` with `secret` and its timestamp is within
    `tolerance_s` seconds of `now` (unix seconds); False for a bad, stale or future signature.

    Compare in constant time; several `v1=` entries are allowed (secret rotation).
    """
    parsed = parse_header(header or "")
    if parsed is None:
        return False
    timestamp, digests = parsed
    if abs(now - timestamp) > tolerance_s:
        return False
    expected = _digest(secret, timestamp, body)
    return any(hmac.compare_digest(expected, d) for d in digests)
