"""The light producer client: enqueue training and rescoring by task name.

Imports only Celery and the settings — never pandas or scikit-learn — so any service can use it.
Inputs are validated before anything reaches the queue.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from celery import Celery

from workers.settings import get_settings

MAX_ENTITY_CHARS = 256
MAX_RANGE_DAYS = 366


class BadRequest(ValueError):
    """A producer request that would fail later; the message says why, in one line."""


@lru_cache(maxsize=1)
def producer_app() -> Celery:
    """A Celery app that only sends (no task code imported)."""
    from workers.celery_app import celery_config

    app = Celery("couchwatch-producer")
    app.conf.update(celery_config(get_settings()))
    return app


def check_entity(entity: Any) -> str | int:
    if isinstance(entity, bool) or not isinstance(entity, str | int):
        raise BadRequest("entity must be text or an integer")
    if isinstance(entity, str) and not (0 < len(entity) <= MAX_ENTITY_CHARS):
        raise BadRequest(f"entity must be 1..{MAX_ENTITY_CHARS} characters")
    return entity


def parse_time(value: str | datetime | None, what: str) -> str | None:
    """ISO 8601 with offset (or a datetime with tzinfo) → canonical UTC text."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("z", "Z"))
        except ValueError:
            raise BadRequest(f"{what} {value!r} is not ISO 8601") from None
    if value.tzinfo is None:
        raise BadRequest(f"{what} needs a timezone offset (e.g. 2026-01-01T00:00:00Z)")
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def rescore(
    entity: str | int,
    start: str | datetime | None = None,
    end: str | datetime | None = None,
    *,
    wait: bool = False,
    timeout_s: float = 300,
) -> str:
    """Enqueue a rescore of `entity` over [start, end); return the job id (wait: until done)."""
    entity = check_entity(entity)
    since, until = parse_time(start, "start"), parse_time(end, "end")
    if since and until:
        if since >= until:
            raise BadRequest("start must be before end")
        days = (datetime.fromisoformat(until) - datetime.fromisoformat(since)).days
        if days > MAX_RANGE_DAYS:
            raise BadRequest(f"range is {days} days; at most {MAX_RANGE_DAYS}")
    result = producer_app().send_task("couchwatch.rescore", args=[entity, since, until])
    if wait:
        result.get(timeout=timeout_s, propagate=False)
    return str(result.id)


def train(entity: str | int) -> str:
    """Enqueue training of one entity; return the job id."""
    entity = check_entity(entity)
    return str(producer_app().send_task("couchwatch.plan_training", args=[[entity]]).id)


def job_status(job_id: str) -> str:
    """PENDING, STARTED, SUCCESS, FAILURE or RETRY (PENDING also means unknown or expired)."""
    return str(producer_app().AsyncResult(job_id).state)
