"""The fleet's Celery app: its configuration (`celery_config`, read lazily from the settings on
first use) and the worker signals (engine check, heartbeat). The fleet's tasks (`workers.tasks`)
bind to it.

Worker and beat processes load the composed app, which adds the planner tasks and the beat
schedule of `scheduler/` (`couchwatch/celery.py`):
    celery -A couchwatch.celery worker -Q score,notify -n score1@%h
"""

from __future__ import annotations

import os
from typing import Any

# BLAS/OpenMP pools pinned to one thread per process before numpy is imported anywhere in the
# worker: N prefork children x M BLAS threads on an N-core box would thrash.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from celery import Celery  # noqa: E402
from celery.signals import task_received, worker_init, worker_ready, worker_shutdown  # noqa: E402
from kombu import Queue  # noqa: E402

from workers.settings import Settings, get_settings  # noqa: E402

QUEUES = ("plan", "train", "score", "notify")


def celery_config(settings: Settings) -> dict[str, Any]:
    """Return the Celery configuration for `settings`, one line of reason per setting."""
    visibility = settings.visibility_timeout_s
    transport = {
        # Unacked tasks return to the queue after this long: the backstop for a worker that died
        # whole (kill -9 of its process group, OOM, lost host) when the heartbeat requeue of
        # workers/liveness.py did not see the message. It must exceed the longest a message stays
        # unacked (retry countdown + hard time limit) or a slow task is delivered twice while
        # still running: by default the hard time limit + 180 s (kombu's default is 3600 s).
        "visibility_timeout": visibility,
    }
    broker_transport = {
        **transport,
        # How often workers look for expired unacked messages and requeue them. kombu's default
        # scans only every 10th sweep of 10 s (~100 s), whatever the visibility timeout: scan on
        # every sweep, at most a tenth of the timeout.
        "unacked_restore_interval": max(1, min(10, visibility // 10)),
        "unacked_restore_throttle": 1,
    }
    return {
        "broker_url": settings.redis_url,
        "result_backend": settings.redis_url,
        "broker_transport_options": broker_transport,
        # The Redis result backend reads the same option for its own pending-result handling.
        "result_backend_transport_options": transport,
        # Keep reconnecting to the broker at startup instead of exiting (Redis restarts).
        "broker_connection_retry_on_startup": True,
        # Ack after the task ran, and requeue when the worker process dies (kill -9, OOM):
        # safe because every task is idempotent (deterministic _ids, merges that keep reviews).
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        # One message reserved per process: long training batches never sit behind each other
        # in one worker's prefetch buffer while other workers idle.
        "worker_prefetch_multiplier": 1,
        # Soft limit raises inside the task so it can record its run; hard limit kills it. Both
        # stay below the visibility timeout.
        "task_soft_time_limit": settings.celery_task_soft_time_limit_s,
        "task_time_limit": settings.celery_task_time_limit_s,
        # JSON only: a message can never make a worker unpickle attacker-controlled bytes.
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        # Results are kept for a day (job_status reads them), then Redis drops them.
        "result_expires": settings.celery_result_expires_s,
        # Most tasks are fire-and-forget; tasks whose result someone reads opt back in.
        "task_ignore_result": True,
        # Recycle worker processes so slow leaks (pandas, sklearn caches) cannot grow forever.
        "worker_max_tasks_per_child": settings.celery_max_tasks_per_child,
        # Task events for Flower, and "started" state so job_status can tell queued from running.
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "task_track_started": True,
        # Named queues so a night of retraining never starves scoring; routed by task name.
        "task_queues": [Queue(name) for name in QUEUES],
        "task_default_queue": "score",
        "task_routes": {
            "couchwatch.plan_*": {"queue": "plan"},
            "couchwatch.train_*": {"queue": "train"},
            "couchwatch.score_*": {"queue": "score"},
            "couchwatch.rescore": {"queue": "score"},
            "couchwatch.notify*": {"queue": "notify"},
        },
        "worker_hijack_root_logger": False,
        "timezone": "UTC",
        "enable_utc": True,
    }


app = Celery("couchwatch", include=["workers.tasks"])


@app.on_configure.connect
def _configure(sender: Celery, **_: Any) -> None:
    sender.conf.update(celery_config(get_settings()))


@worker_init.connect
def _check_engine(**_: Any) -> None:
    """Refuse to start a worker whose detection settings are invalid (one clear line)."""
    from workers.detection import engine_config
    from workers.engine.errors import ConfigError

    try:
        engine_config(get_settings())
    except ConfigError as exc:
        raise SystemExit(f"couchwatch: invalid detection settings: {exc}") from None


@worker_ready.connect
def _start_heartbeat(sender: Any, **_: Any) -> None:
    """Beat in Redis, and requeue the messages of workers that stopped beating (main process)."""
    from workers import liveness

    settings = get_settings()
    liveness.start(
        sender.app, settings.redis_url, sender.hostname, settings.couchwatch_worker_heartbeat_s
    )


@task_received.connect
def _record_held(request: Any, **_: Any) -> None:
    from workers import liveness

    liveness.received(getattr(request.message, "delivery_tag", None))


@worker_shutdown.connect
def _stop_heartbeat(**_: Any) -> None:
    from workers import liveness

    liveness.stop()
