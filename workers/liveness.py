"""Worker heartbeats in Redis, and the requeue of a dead worker's messages by the survivors.

With the Redis broker and `task_acks_late`, a message a worker has received but not acked sits in
kombu's `unacked` hash (delivery tag -> [message, exchange, routing key]), scored by delivery
time in the `unacked_index` zset. When only a pool child dies, the worker's main process rejects
the message and it is requeued at once (`task_reject_on_worker_lost`). When the whole worker dies
(`kill -9` of its process group, OOM killer, lost host) nobody rejects it: kombu's only rescue is
`restore_visible`, run by any live worker, which requeues entries older than the visibility
timeout (the hard time limit + 180 s by default). This module brings them back within about three
heartbeats instead:

- every worker *incarnation* (hostname, pid, random suffix: a restarted worker is a new one)
  refreshes `couchwatch:worker-alive:<incarnation>` every `COUCHWATCH_WORKER_HEARTBEAT_S`
  (default 10 s) with a TTL of three beats, and lists itself in the `couchwatch:workers` hash;
- on receipt of a message (`task_received`, in the main process) it adds the delivery tag to its
  set `couchwatch:worker-held:<incarnation>`, and drops acked tags from that set on each beat;
- on each beat, every worker looks for listed incarnations whose alive key has expired and puts
  the messages they held, if still unacked, back at the head of their queues with kombu's own
  `QoS.restore_by_tag` (a WATCH/MULTI transaction on `unacked`: a message is requeued once,
  even when two survivors, or kombu's own `restore_visible`, race for it).

A worker only requeues after it has itself beaten without error for three beats, so after a Redis
outage nobody is declared dead before it had the chance to beat again. The beats run in a thread
of the worker's main process, so they do not stop while a task runs (any pool, `solo` too). A
worker that is alive but stalled for three beats (SIGSTOP, a suspended VM) has its messages
requeued and may run them twice: every couchwatch task is idempotent. A message received in the
milliseconds between kombu's delivery and `task_received` is not in any held set; it comes back
after the visibility timeout.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis

log = logging.getLogger(__name__)

WORKERS_KEY = "couchwatch:workers"  # hash: incarnation -> hostname
ALIVE_PREFIX = "couchwatch:worker-alive:"
HELD_PREFIX = "couchwatch:worker-held:"
MISSED_BEATS = 3  # a worker is dead after this many heartbeat intervals without a beat
UNACKED_KEY = "unacked"  # kombu.transport.redis.Channel.unacked_key (not overridden here)


def alive_key(incarnation: str) -> str:
    return f"{ALIVE_PREFIX}{incarnation}"


def held_key(incarnation: str) -> str:
    return f"{HELD_PREFIX}{incarnation}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@dataclass
class Liveness:
    """One worker incarnation's heartbeat, held messages and requeue of dead peers' messages.

    `restore(tag)` puts the unacked message `tag` back in its queue (kombu's `restore_by_tag`);
    `clock` is monotonic seconds. Redis errors propagate: the caller logs and calls `failed`.
    """

    client: redis.Redis
    hostname: str
    interval_s: float
    restore: Callable[[str], None]
    incarnation: str = ""
    clock: Callable[[], float] = time.monotonic
    healthy_since: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if not self.incarnation:
            self.incarnation = f"{self.hostname}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    @property
    def ttl_s(self) -> int:
        return max(1, math.ceil(self.interval_s * MISSED_BEATS))

    def received(self, delivery_tag: str) -> None:
        """Remember that this worker holds the message `delivery_tag` (main process)."""
        self.client.sadd(held_key(self.incarnation), delivery_tag)

    def beat(self) -> dict[str, int]:
        """One heartbeat: refresh, forget acked tags, requeue what dead workers held.

        Returns {dead incarnation: messages requeued} for the incarnations reaped this beat.
        """
        pipe = self.client.pipeline(transaction=False)
        pipe.set(alive_key(self.incarnation), self.hostname, ex=self.ttl_s)
        pipe.hset(WORKERS_KEY, self.incarnation, self.hostname)
        pipe.execute()
        self.prune()
        now = self.clock()
        if self.healthy_since is None:
            self.healthy_since = now
        if now - self.healthy_since < self.ttl_s:
            return {}  # just started or back after an error: let the others beat first
        return self.reap()

    def failed(self) -> None:
        """A beat failed (Redis unreachable): wait three clean beats before reaping again."""
        self.healthy_since = None

    def prune(self) -> None:
        """Drop the tags of this worker's held set that are no longer unacked (acked)."""
        key = held_key(self.incarnation)
        tags = [_text(t) for t in self.client.smembers(key)]
        gone = [t for t, held in zip(tags, self._unacked(tags), strict=True) if not held]
        if gone:
            self.client.srem(key, *gone)

    def reap(self) -> dict[str, int]:
        reaped: dict[str, int] = {}
        for incarnation in sorted(_text(k) for k in self.client.hkeys(WORKERS_KEY)):
            if incarnation == self.incarnation or self.client.exists(alive_key(incarnation)):
                continue
            tags = [_text(t) for t in self.client.smembers(held_key(incarnation))]
            lost = [t for t, held in zip(tags, self._unacked(tags), strict=True) if held]
            for tag in lost:
                self.restore(tag)
            self.client.delete(held_key(incarnation))
            self.client.hdel(WORKERS_KEY, incarnation)
            reaped[incarnation] = len(lost)
            log.warning(
                "worker %s missed its heartbeats for %d s: %d unacked message(s) put back "
                "in their queues",
                incarnation,
                self.ttl_s,
                len(lost),
            )
        return reaped

    def forget(self) -> None:
        """At a clean shutdown: unlist this incarnation (kombu restores what it still holds)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.delete(alive_key(self.incarnation), held_key(self.incarnation))
        pipe.hdel(WORKERS_KEY, self.incarnation)
        pipe.execute()

    def _unacked(self, tags: list[str]) -> list[bool]:
        if not tags:
            return []
        pipe = self.client.pipeline(transaction=False)
        for tag in tags:
            pipe.hexists(UNACKED_KEY, tag)
        return [bool(v) for v in pipe.execute()]


class KombuRestore:
    """`restore(tag)` through a broker connection of its own (kombu's `restore_by_tag`: the
    message goes back to the queue its exchange and routing key name, marked redelivered)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.connection: Any = None

    def __call__(self, tag: str) -> None:
        if self.connection is None:
            self.connection = self.app.connection_for_write()
        self.connection.default_channel.qos.restore_by_tag(tag)

    def reset(self) -> None:
        if self.connection is not None:
            try:
                self.connection.release()
            except Exception:  # a broken connection is dropped either way
                log.debug("closing the liveness broker connection failed", exc_info=True)
            self.connection = None


class Heartbeat(threading.Thread):
    """The daemon thread that beats every `interval_s` until `stop()`."""

    def __init__(self, liveness: Liveness, restorer: KombuRestore) -> None:
        super().__init__(name="couchwatch-heartbeat", daemon=True)
        self.liveness = liveness
        self.restorer = restorer
        self.stopping = threading.Event()
        self.failing = False

    def run(self) -> None:
        while True:
            self.beat_once()
            if self.stopping.wait(self.liveness.interval_s):
                return

    def beat_once(self) -> None:
        try:
            self.liveness.beat()
        except Exception as exc:  # Redis or kombu errors: keep beating, say it once
            self.liveness.failed()
            self.restorer.reset()
            if not self.failing:
                log.warning(
                    "worker heartbeat failed (%s); retrying every %.0f s",
                    type(exc).__name__,
                    self.liveness.interval_s,
                )
            self.failing = True
        else:
            if self.failing:
                log.info("worker heartbeat back")
            self.failing = False

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=5)
        with contextlib.suppress(redis.RedisError):  # else the keys expire; a survivor unlists it
            self.liveness.forget()
        self.restorer.reset()


_current: Heartbeat | None = None


def start(app: Any, redis_url: str, hostname: str, interval_s: float) -> Heartbeat | None:
    """Start this worker's heartbeat thread (once per process); `interval_s` 0 disables it."""
    global _current
    if interval_s <= 0 or _current is not None:
        return _current
    client = redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)
    restorer = KombuRestore(app)
    _current = Heartbeat(Liveness(client, hostname, interval_s, restorer), restorer)
    _current.beat_once()  # listed before the first message can arrive
    _current.start()
    log.info(
        "worker heartbeat every %.0f s as %s; dead after %d s",
        interval_s,
        _current.liveness.incarnation,
        _current.liveness.ttl_s,
    )
    return _current


def received(delivery_tag: str | None) -> None:
    """Record a received message (the `task_received` signal). Never raises: a tag that could
    not be recorded is still restored after the visibility timeout."""
    if _current is None or not delivery_tag:
        return
    try:
        _current.liveness.received(delivery_tag)
    except redis.RedisError as exc:
        log.warning("could not record message %s as held (%s)", delivery_tag, type(exc).__name__)


def stop() -> None:
    global _current
    if _current is not None:
        _current.stop()
        _current = None
