"""Deterministic, URL-safe keys for entities and jobs (entity ids are data, never paths)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

Entity = str | int  # the rule: workers.events.entity_problem


def entity_key(entity: Entity) -> str:
    """A short stable hash of an entity id, safe in any document id or Redis key."""
    return hashlib.sha256(json.dumps(entity).encode()).hexdigest()[:24]


def short_hash(*parts: Any) -> str:
    """A stable 16-hex-digit hash of JSON-serializable parts."""
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:16]
