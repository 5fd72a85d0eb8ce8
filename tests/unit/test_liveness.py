"""Worker heartbeats and the requeue of a dead worker's unacked messages (workers/liveness.py),
on fakeredis with a fake clock; the real thing, on real processes, is in
tests/integration/test_worker_lost.py."""

from __future__ import annotations

import fakeredis
import pytest

from workers.celery_app import celery_config
from workers.liveness import (
    UNACKED_KEY,
    WORKERS_KEY,
    Liveness,
    alive_key,
    held_key,
)
from workers.settings import Settings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _worker(client: fakeredis.FakeRedis, name: str, clock: Clock, restored: list[str]) -> Liveness:
    return Liveness(client, f"{name}@host", 10, restored.append, incarnation=name, clock=clock)


def _deliver(client: fakeredis.FakeRedis, worker: Liveness, tag: str) -> None:
    client.hset(UNACKED_KEY, tag, "[message, exchange, routing key]")  # kombu's QoS.append
    worker.received(tag)


def test_a_dead_workers_unacked_messages_are_requeued_once_and_a_live_ones_never() -> None:
    client = fakeredis.FakeRedis()
    clock, restored = Clock(), []
    w1, w2, w3 = (_worker(client, n, clock, restored) for n in ("w1", "w2", "w3"))
    for w in (w1, w2, w3):
        w.beat()
    _deliver(client, w1, "t-running")
    _deliver(client, w1, "t-acked")
    client.hdel(UNACKED_KEY, "t-acked")  # acked before the kill
    _deliver(client, w3, "t-live")
    clock.now += 30
    assert w2.beat() == {}  # everyone still beating
    client.delete(alive_key("w1"))  # w1 killed: its key expired after 3 missed beats
    assert w2.beat() == {"w1": 1}
    assert restored == ["t-running"]  # the acked one is not brought back; w3's untouched
    assert not client.exists(held_key("w1"))
    assert sorted(client.hkeys(WORKERS_KEY)) == [b"w2", b"w3"]
    assert w3.beat() == {} and w2.beat() == {}  # reaped once
    assert restored == ["t-running"]


def test_no_requeue_until_three_clean_beats_after_start_or_an_error() -> None:
    client = fakeredis.FakeRedis()
    clock, restored = Clock(), []
    dead = _worker(client, "dead", clock, restored)
    dead.beat()
    _deliver(client, dead, "t1")
    client.delete(alive_key("dead"))
    survivor = _worker(client, "survivor", clock, restored)
    assert survivor.ttl_s == 30
    assert survivor.beat() == {}  # just started: the others may not have beaten yet
    clock.now += 20
    assert survivor.beat() == {}
    survivor.failed()  # Redis was unreachable: start counting again
    clock.now += 20
    assert survivor.beat() == {}
    clock.now += 30
    assert survivor.beat() == {"dead": 1}
    assert restored == ["t1"]


def test_acked_tags_are_pruned_and_a_clean_shutdown_unlists_the_worker() -> None:
    client = fakeredis.FakeRedis()
    worker = _worker(client, "w1", Clock(), [])
    worker.beat()
    for tag in ("a", "b", "c"):
        _deliver(client, worker, tag)
    client.hdel(UNACKED_KEY, "a", "c")
    worker.beat()
    assert client.smembers(held_key("w1")) == {b"b"}
    assert client.ttl(alive_key("w1")) == 30
    worker.forget()
    assert not client.exists(alive_key("w1"), held_key("w1"))
    assert client.hkeys(WORKERS_KEY) == []


def test_visibility_timeout_follows_the_hard_time_limit() -> None:
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    assert defaults.celery_task_time_limit_s == 600
    assert defaults.visibility_timeout_s == 780  # + 120 s retry countdown + 60 s
    longer = Settings(_env_file=None, celery_task_time_limit_s=1800)  # type: ignore[call-arg]
    assert longer.visibility_timeout_s == 1980
    assert celery_config(longer)["broker_transport_options"]["visibility_timeout"] == 1980
    explicit = Settings(_env_file=None, celery_visibility_timeout_s=900)  # type: ignore[call-arg]
    assert celery_config(explicit)["result_backend_transport_options"] == {
        "visibility_timeout": 900
    }
    with pytest.raises(ValueError, match="must exceed CELERY_TASK_TIME_LIMIT_S"):
        Settings(_env_file=None, celery_visibility_timeout_s=600)  # type: ignore[call-arg]
