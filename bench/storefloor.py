"""The store floor: read per-entity histories with the fleet's own query and do nothing else.

Two reader processes (like the two workers) run `iter_entity_events` over the same
(entity, start) pairs the fleet reads: the training history and the new events scored.
"""

from __future__ import annotations

import multiprocessing
import time
from typing import Any

from workers.couch.client import CouchClient
from workers.settings import Settings
from workers.store.events import iter_entity_events

Query = tuple[str, str | None]
_settings: Settings | None = None
_client: CouchClient | None = None


def _init(settings: Settings) -> None:
    global _client, _settings
    _settings = settings
    _client = CouchClient.from_settings(settings)


def _read(queries: list[Query]) -> int:
    assert _client is not None and _settings is not None
    n = 0
    for entity, start in queries:
        for _ in iter_entity_events(_client, _settings, entity, start=start):
            n += 1
    return n


def read_floor(settings: Settings, queries: list[Query], readers: int = 2) -> dict[str, Any]:
    """Seconds to read every query's events with `readers` processes; events read."""
    halves = [queries[i::readers] for i in range(readers)]
    # spawn, not fork: this process has threads (forking them can deadlock the children)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(readers, initializer=_init, initargs=(settings,)) as pool:
        pool.map(_read, [[] for _ in range(readers)])  # processes up, clients made
        start = time.perf_counter()
        counts = pool.map(_read, halves, chunksize=1)
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "events": sum(counts), "queries": len(queries), "readers": readers}
