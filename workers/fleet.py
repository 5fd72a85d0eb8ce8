"""Per-process resources of a worker: settings, CouchDB client, Redis, model store and cache.

Created lazily on first use inside the worker process (after the prefork fork), never at import.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING

import redis

from workers.couch.client import CouchClient
from workers.ids import Entity, entity_key
from workers.settings import Settings, get_settings
from workers.store.events import utc_now
from workers.store.models import ModelCache, ModelStore

if TYPE_CHECKING:
    from workers.engine.config import EngineConfig
    from workers.engine.results import ScoreResult


@dataclass
class Fleet:
    settings: Settings
    couch: CouchClient
    redis: redis.Redis
    models: ModelStore
    cache: ModelCache
    # the fleet's clock: planning, the training history window and event validation read it
    # (a simulation, `couchwatch evaluate`, runs the fleet "at" the end of its data)
    now: Callable[[], datetime] = utc_now
    # called by `score_entities` with every full score result (evaluation reads all rows)
    on_scored: Callable[[Entity, ScoreResult], None] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Fleet:
        couch = CouchClient.from_settings(settings)
        return cls(
            settings=settings,
            couch=couch,
            redis=redis.Redis.from_url(settings.redis_url, socket_timeout=10),
            models=ModelStore(
                couch, settings.db_name("models"), keep=settings.couchwatch_model_keep_versions
            ),
            cache=ModelCache(settings.couchwatch_model_cache_size),
        )

    @cached_property
    def engine(self) -> EngineConfig:
        """The detection engine's configuration, built from the settings once and validated."""
        from workers.detection import engine_config  # heavy (pandas); not for producers

        return engine_config(self.settings)

    @contextlib.contextmanager
    def training_lock(self, entity: Entity, request_id: str, ttl_s: int) -> Iterator[bool]:
        """Hold the per-entity training lock; yields False when another request holds it.

        The same request (a redelivery after a worker died) may take its own lock over.
        """
        key = f"couchwatch:train-lock:{entity_key(entity)}"
        got = bool(self.redis.set(key, request_id, nx=True, ex=ttl_s))
        if not got:
            holder = self.redis.get(key)
            got = holder is not None and _text(holder) == request_id
        try:
            yield got
        finally:
            if got:
                release_if_owner(self.redis, key, request_id)


_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end"


def release_if_owner(client: redis.Redis, key: str, token: str) -> None:
    """Delete `key` only when it still holds `token` (atomic)."""
    client.eval(_RELEASE, 1, key, token)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@lru_cache(maxsize=1)
def current() -> Fleet:
    """The fleet resources of this process."""
    return Fleet.from_settings(get_settings())
