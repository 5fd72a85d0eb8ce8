"""The quarantined event: input that failed validation, kept with its reason, never dropped.

One document per rejected input line (or event of a batch, or event document the planner found
invalid) in `<prefix>quarantine`: `_id` `q-<hash>` of (line number, raw bytes, reason), so
re-reading the same file adds nothing and two different over-long lines (the same empty `raw`)
get a document each. Shape: `type` `quarantined_event`, `reason`, `raw` (the input as text, at
most `QUARANTINE_RAW_CHARS`), `raw_bytes`, `truncated`, `source`, `line`, `received_at`; the
planner adds `event_id` (the event document it came from).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from workers.events import canonical_timestamp

DOC_TYPE = "quarantined_event"
ID_PREFIX = "q-"
QUARANTINE_RAW_CHARS = 4096
MAX_SOURCE_CHARS = 512


def quarantine_id(line: int, raw: bytes, reason: str) -> str:
    """The deterministic id of the quarantine document of (line number, raw input, reason)."""
    key = f"{line}\n".encode() + raw + reason.encode()
    return ID_PREFIX + hashlib.sha256(key).hexdigest()[:40]


def quarantine_doc(
    line: int, raw: bytes, reason: str, source: str, now: datetime
) -> dict[str, Any]:
    """A quarantine document: the raw input (truncated), the reason, where it came from."""
    text = raw.decode("utf-8", errors="replace").rstrip("\n")
    return {
        "_id": quarantine_id(line, raw, reason),
        "type": DOC_TYPE,
        "reason": reason,
        "raw": text[:QUARANTINE_RAW_CHARS],
        "raw_bytes": len(raw),
        "truncated": len(text) > QUARANTINE_RAW_CHARS,
        "source": source[:MAX_SOURCE_CHARS],
        "line": line,
        "received_at": canonical_timestamp(now),
    }
