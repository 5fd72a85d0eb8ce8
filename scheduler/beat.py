"""The beat schedule, built from settings, and the guard that keeps two beats from doubling work.

Every planner message carries nothing; the planner task claims its time slot in Redis
(`SET NX`), so when two beats run by mistake the second message of a slot is a no-op.
"""

from __future__ import annotations

from typing import Any

from workers.settings import Settings

NOTIFY_PENDING_INTERVAL_S = 60.0


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """Scoring every `COUCHWATCH_SCORE_INTERVAL_S`, the training check every
    `COUCHWATCH_TRAIN_CHECK_INTERVAL_S` (it retrains stale models or ones with many new events)."""
    return {
        "plan-scoring": {
            "task": "couchwatch.plan_scoring",
            "schedule": settings.couchwatch_score_interval_s,
            "options": {"queue": "plan", "expires": settings.couchwatch_score_interval_s},
        },
        "plan-training": {
            "task": "couchwatch.plan_training",
            "schedule": settings.couchwatch_train_check_interval_s,
            "options": {"queue": "plan", "expires": settings.couchwatch_train_check_interval_s},
        },
        # Digests whose window reopened and retries with backoff; sends nothing when none is due.
        "notify-pending": {
            "task": "couchwatch.notify_pending",
            "schedule": NOTIFY_PENDING_INTERVAL_S,
            "options": {"queue": "notify", "expires": NOTIFY_PENDING_INTERVAL_S},
        },
    }


def slot_key(name: str, interval_s: float, now_s: float) -> str:
    """Redis key of the schedule slot `now_s` falls in for planner `name`."""
    return f"couchwatch:slot:{name}:{int(now_s // interval_s)}"
