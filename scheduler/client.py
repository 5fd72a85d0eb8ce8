"""The light producer client: enqueue training and rescoring by task name.

Imports only Celery and the settings — never pandas, numpy or scikit-learn — so any service can
use it (`tests/unit/test_producer_client.py` proves it with those modules blocked). Every input
is validated before anything reaches the queue: a bad request raises `BadRequest` with a one-line
reason instead of becoming a failed task later.

    from scheduler.client import job_status, rescore
    job = rescore("alice", "2026-01-01T00:00:00Z", "2026-01-08T00:00:00Z")
    job_status(job)  # "PENDING" | "STARTED" | "SUCCESS" | "FAILURE" | "RETRY"
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from celery import Celery

from workers.events import (
    NoTimezoneOffset,
    canonical_timestamp,
    entity_problem,
    parse_timestamp,
)
from workers.settings import get_settings

MAX_RANGE_DAYS = 366
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
CLOCK_SKEW = timedelta(days=1)  # how far in the future a bound may lie
MAX_JOB_ID_CHARS = 255


class ProducerError(Exception):
    """Base of the errors a producer sees; each message is one line."""


class BadRequest(ProducerError, ValueError):
    """A request that would fail later; the message says why, in one line."""


class BrokerUnavailable(ProducerError, ConnectionError):
    """The broker (Redis) did not accept the job; nothing was enqueued."""


class JobTimeout(ProducerError, TimeoutError):
    """`wait=True` gave up; the job stays queued or running and keeps its id."""


@lru_cache(maxsize=1)
def producer_app() -> Celery:
    """A Celery app that only sends: broker, serializer and routes, no task code imported."""
    from workers.celery_app import celery_config

    config = celery_config(get_settings())
    # A producer fails fast when Redis is down (about 2 s) instead of retrying for ~20 s.
    config["result_backend_transport_options"] = {
        **config["result_backend_transport_options"],
        "retry_policy": {"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5},
    }
    config["broker_connection_timeout"] = 2
    app = Celery("couchwatch-producer")
    app.conf.update(config)
    return app


def check_entity(entity: Any) -> str | int:
    """Return `entity` if it is a usable entity id, else raise BadRequest: the rule ingest applies
    (`workers.events.entity_problem`), so every entity ingest stored can be rescored."""
    problem = entity_problem(entity)
    if problem:
        raise BadRequest(problem)
    return entity


def to_utc(value: str | int | float | datetime | None, what: str) -> datetime | None:
    """ISO 8601 with an offset, epoch seconds, or an aware datetime → aware UTC datetime."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise BadRequest(f"{what} must be a time, not a boolean")
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise BadRequest(f"{what} needs a timezone offset (e.g. 2026-01-01T00:00:00Z)")
        return value.astimezone(UTC)
    if not isinstance(value, str | int | float):
        raise BadRequest(f"{what} must be ISO 8601 text, epoch seconds or a datetime")
    try:
        return parse_timestamp(value)  # the rule ingest applies to event timestamps
    except NoTimezoneOffset:
        raise BadRequest(f"{what} needs a timezone offset (e.g. 2026-01-01T00:00:00Z)") from None
    except ValueError:
        if isinstance(value, str):
            text = value.strip()[:60]
            raise BadRequest(f"{what} {text!r} is not ISO 8601 or epoch seconds") from None
        raise BadRequest(f"{what} {value!r} is not a usable epoch time") from None


def parse_time(value: str | int | float | datetime | None, what: str) -> str | None:
    """Like `to_utc`, returned as the canonical UTC text the tasks and documents use."""
    moment = to_utc(value, what)
    return None if moment is None else wire_time(moment)


def wire_time(value: datetime) -> str:
    """The canonical UTC text the tasks expect: `2026-01-01T00:00:00.000Z`."""
    return canonical_timestamp(value)


def rescore_args(
    entity: Any, start: Any = None, end: Any = None, *, now: datetime | None = None
) -> list[Any]:
    """Validate a rescore request; return the task arguments `[entity, start, end]`.

    Bounds are half-open [start, end). A missing start means all stored history, a missing end
    means up to now. Explicit bounds lie between 2000-01-01 and now (plus a day of clock skew),
    start before end, at most `MAX_RANGE_DAYS` apart.
    """
    entity = check_entity(entity)
    since, until = to_utc(start, "start"), to_utc(end, "end")
    now = now or datetime.now(UTC)
    for what, bound in (("start", since), ("end", until)):
        if bound is not None and not EARLIEST <= bound <= now + CLOCK_SKEW:
            raise BadRequest(f"{what} {wire_time(bound)} is outside 2000-01-01 .. now")
    if since is not None and until is not None and since >= until:
        raise BadRequest(f"start {wire_time(since)} must be before end {wire_time(until)}")
    if since is not None:
        days = ((until or now) - since) / timedelta(days=1)
        if days > MAX_RANGE_DAYS:
            raise BadRequest(f"range is {int(days)} days; at most {MAX_RANGE_DAYS} per request")
    return [entity, wire_time(since) if since else None, wire_time(until) if until else None]


def rescore(
    entity: str | int,
    start: str | int | float | datetime | None = None,
    end: str | int | float | datetime | None = None,
    *,
    wait: bool = False,
    timeout_s: float = 300,
) -> str:
    """Enqueue a rescore of `entity` over [start, end); return the job id.

    With `wait=True`, return once the job has finished (see `job_status` for how it ended), or
    raise `JobTimeout` after `timeout_s` seconds. Rescoring is idempotent: the same range twice
    writes the same anomaly documents and keeps their review status.
    """
    args = rescore_args(entity, start, end)
    job_id = _send("couchwatch.rescore", args=args)
    if wait:
        _wait(job_id, timeout_s)
    return job_id


def train(entity: str | int) -> str:
    """Enqueue (re)training of one entity; return the job id of the planning job.

    The planning job refreshes the population profile when stale and enqueues the entity's
    training batch unless one is already pending, so repeated calls never pile up work. Its
    `job_status` turns SUCCESS once training is enqueued; the training run itself is recorded in
    `couchwatch runs`.
    """
    entity = check_entity(entity)
    return _send("couchwatch.plan_training", kwargs={"entities": [entity]})


def job_status(job_id: str) -> str:
    """PENDING, STARTED, SUCCESS, FAILURE or RETRY (PENDING also means unknown or expired)."""
    if not isinstance(job_id, str) or not 0 < len(job_id) <= MAX_JOB_ID_CHARS:
        raise BadRequest("job id must be the text returned by rescore() or train()")
    from kombu.exceptions import OperationalError
    from redis import RedisError

    try:
        return str(producer_app().AsyncResult(job_id).state)
    except (RedisError, OperationalError) as exc:
        raise BrokerUnavailable(f"result backend unavailable: {type(exc).__name__}") from exc


def _send(name: str, *, args: list[Any] | None = None, kwargs: dict[str, Any] | None = None) -> str:
    from kombu.exceptions import OperationalError
    from redis import RedisError

    try:
        # ignore_result=False per message: the tasks default to no result, producers read one.
        result = producer_app().send_task(name, args=args, kwargs=kwargs, ignore_result=False)
    except (OperationalError, RedisError, RuntimeError) as exc:
        # Celery's result consumer raises RuntimeError once its reconnects are used up and is
        # unusable afterwards: the next request builds a fresh app.
        producer_app.cache_clear()
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BrokerUnavailable(f"broker unavailable, nothing enqueued: {reason}") from exc
    return str(result.id)


def _wait(job_id: str, timeout_s: float) -> None:
    from celery.exceptions import TimeoutError as CeleryTimeout

    try:
        producer_app().AsyncResult(job_id).get(timeout=timeout_s, propagate=False, interval=0.2)
    except CeleryTimeout:
        raise JobTimeout(f"job {job_id} not finished after {timeout_s:g} s") from None
