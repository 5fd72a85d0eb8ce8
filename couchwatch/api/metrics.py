"""Prometheus metrics of the API process: counters it keeps, and gauges read at scrape time
(anomalies by severity and notifications by status from `_count` views, queue lengths from
Redis). Each app has its own registry, so tests can build many apps in one process."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

import redis
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from couchwatch.api.events_batch import ItemResult
from workers.celery_app import QUEUES
from workers.couch.client import CouchClient
from workers.couch.errors import CouchError, NotFound
from workers.couch.schema import STATS_DDOC
from workers.couch.transport import db_path
from workers.settings import Settings

log = logging.getLogger(__name__)
PRIORITY_SEP = "\x06\x16"  # kombu's Redis transport: `<queue><sep><priority>` per priority


class StoreCollector(Collector):
    """Reads counts from CouchDB and Redis at each scrape (failures are logged, not raised)."""

    def __init__(self, settings: Settings, couch: CouchClient, broker: redis.Redis) -> None:
        self.settings, self.couch, self.broker = settings, couch, broker

    def collect(self) -> Iterator[Metric]:
        for name, doc, suffix, view, label in (
            (
                "couchwatch_anomalies",
                "Anomalies stored, by severity.",
                "anomalies",
                "by_severity",
                "severity",
            ),
            (
                "couchwatch_notifications",
                "Notifications, by delivery status.",
                "notifications",
                "by_status",
                "status",
            ),
        ):
            family = GaugeMetricFamily(name, doc, labels=[label])
            for key, count in self._view(self.settings.db_name(suffix), view):
                family.add_metric([str(key)], count)
            yield family
        queues = GaugeMetricFamily(
            "couchwatch_queue_length", "Messages waiting in each Celery queue.", labels=["queue"]
        )
        for queue in QUEUES:
            length = self._queue_length(queue)
            if length is not None:
                queues.add_metric([queue], length)
        yield queues

    def _view(self, db: str, view: str) -> Iterable[tuple[Any, int]]:
        try:
            reply = self.couch.transport.request(
                "GET", f"{db_path(db)}/{STATS_DDOC}/_view/{view}", params={"group": "true"}
            )
        except NotFound:
            return []
        except CouchError as exc:
            log.warning("metrics: view %s of %s unreadable: %s", view, db, exc)
            return []
        return [(row["key"], int(row["value"])) for row in reply.get("rows", [])]

    def _queue_length(self, queue: str) -> int | None:
        keys = [queue, *(f"{queue}{PRIORITY_SEP}{p}" for p in range(1, 10))]
        try:
            pipe = self.broker.pipeline()
            for key in keys:
                pipe.llen(key)
            return sum(int(n) for n in pipe.execute())
        except redis.RedisError as exc:
            log.warning("metrics: queue %s unreadable: %s", queue, exc)
            return None


class ApiMetrics:
    """The API's registry: its own counters plus the store collector."""

    def __init__(self, settings: Settings, couch: CouchClient, broker: redis.Redis) -> None:
        self.registry = CollectorRegistry()
        self.ingested = Counter(
            "couchwatch_api_events",
            "Events posted to the API, by outcome.",
            ["result"],
            registry=self.registry,
        )
        self.registry.register(StoreCollector(settings, couch, broker))

    def count_ingested(self, results: list[ItemResult]) -> None:
        for result in results:
            self.ingested.labels(result=result.status).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
