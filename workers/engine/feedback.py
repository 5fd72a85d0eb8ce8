"""Review feedback that shapes training.

Events inside anomalies reviewed ``confirmed`` (malicious) are left out of training, so the
model never learns an attack as normal. Events inside ``dismissed`` anomalies (benign, e.g. a
new phone) are learned with extra weight, so the same thing does not alert again.

Plain data: ``workers/store/anomalies.py::feedback`` builds it from reviewed documents.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class Feedback:
    """Event ids grouped by review outcome."""

    confirmed: frozenset[str] = frozenset()
    dismissed: frozenset[str] = frozenset()
