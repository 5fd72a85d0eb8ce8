"""Review feedback that shapes training.

Events inside anomalies reviewed ``confirmed`` (malicious) are left out of training, so the
model never learns an attack as normal. Events inside ``dismissed`` anomalies (benign, e.g. a
new phone) are learned with extra weight, so the same thing does not alert again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, kw_only=True)
class Feedback:
    """Event ids grouped by review outcome."""

    confirmed: frozenset[str] = frozenset()
    dismissed: frozenset[str] = frozenset()

    @classmethod
    def from_anomalies(cls, anomalies: Iterable[Mapping[str, Any]]) -> Feedback:
        """Collect event ids from anomaly documents by ``review.status``.

        An event in both a confirmed and a dismissed anomaly counts as confirmed (safer).
        """
        confirmed: set[str] = set()
        dismissed: set[str] = set()
        for doc in anomalies:
            status = (doc.get("review") or {}).get("status")
            ids = {str(e) for e in doc.get("event_ids") or ()}
            if status == "confirmed":
                confirmed |= ids
            elif status == "dismissed":
                dismissed |= ids
        return cls(confirmed=frozenset(confirmed), dismissed=frozenset(dismissed - confirmed))
