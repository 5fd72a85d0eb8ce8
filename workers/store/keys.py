"""API keys: created once, shown once, stored hashed in `<prefix>apikeys`.

A key reads `cwk_<key id>_<secret>`. The key id names the document (`apikey-<key id>`); only a
per-key random salt and SHA-256(salt + secret) are stored, so a copy of the database does not
reveal any key. Scopes: `ingest`, `read`, `review`, `admin` (admin implies all).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from workers.couch.client import CouchClient
from workers.events import canonical_timestamp

SCOPES = ("ingest", "read", "review", "admin")
PREFIX = "cwk"
KEY_PATTERN = re.compile(r"^cwk_([0-9a-f]{16})_([A-Za-z0-9_-]{20,100})$")
CACHE_TTL_S = 30.0


@dataclass(frozen=True)
class ApiKey:
    """A verified key: its id, name and scopes (never the secret)."""

    key_id: str
    name: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes


def doc_id(key_id: str) -> str:
    return f"apikey-{key_id}"


def _digest(salt: str, secret: str) -> str:
    return hashlib.sha256(f"{salt}:{secret}".encode()).hexdigest()


def create_key(client: CouchClient, db: str, scopes: list[str], name: str = "") -> str:
    """Store a new key with `scopes` and return the full key text (the only time it exists)."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise ValueError(f"scopes must be among {', '.join(SCOPES)}; got {unknown or 'none'}")
    key_id, secret, salt = secrets.token_hex(8), secrets.token_urlsafe(32), secrets.token_hex(16)
    client.put(
        db,
        {
            "_id": doc_id(key_id),
            "type": "apikey",
            "name": name[:200],
            "scopes": sorted(set(scopes)),
            "salt": salt,
            "sha256": _digest(salt, secret),
            "created_at": canonical_timestamp(datetime.now(UTC)),
            "revoked": False,
        },
    )
    return f"{PREFIX}_{key_id}_{secret}"


class KeyVerifier:
    """Checks presented keys against the stored hashes (documents cached for `ttl_s`)."""

    def __init__(self, client: CouchClient, db: str, *, ttl_s: float = CACHE_TTL_S) -> None:
        self.client, self.db, self.ttl_s = client, db, ttl_s
        self._cache: dict[str, tuple[float, dict[str, object] | None]] = {}

    def verify(self, presented: str) -> ApiKey | None:
        """The key's identity when `presented` is a valid, unrevoked key; else None."""
        match = KEY_PATTERN.match(presented)
        if match is None:
            return None
        key_id, secret = match.groups()
        doc = self._doc(key_id)
        if doc is None or doc.get("revoked") or doc.get("type") != "apikey":
            return None
        expected = str(doc.get("sha256", ""))
        if not hmac.compare_digest(_digest(str(doc.get("salt", "")), secret), expected):
            return None
        scopes = frozenset(str(s) for s in doc.get("scopes", []) or [])  # type: ignore[attr-defined]
        return ApiKey(key_id, str(doc.get("name", "")), scopes)

    def _doc(self, key_id: str) -> dict[str, object] | None:
        now = time.monotonic()
        cached = self._cache.get(key_id)
        if cached is not None and now - cached[0] < self.ttl_s:
            return cached[1]
        doc = self.client.get(self.db, doc_id(key_id))
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key_id] = (now, doc)
        return doc
