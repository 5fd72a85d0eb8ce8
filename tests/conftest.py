"""Shared fixtures. Integration fixtures start real services; they fail, never skip."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
import redis

from tests.support.services import (
    CouchServer,
    RedisServer,
    ServiceMissing,
    couch_server,
    redis_server,
)
from workers.couch.client import CouchClient
from workers.settings import DB_SUFFIXES, Settings


@pytest.fixture(scope="session")
def couchdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CouchServer]:
    """A PouchDB Server with an admin user, on a free port, for the whole session."""
    try:
        with couch_server(tmp_path_factory.mktemp("pouchdb")) as server:
            yield server
    except ServiceMissing as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def redis_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A private redis-server on a free port (never the shared one on 6379)."""
    try:
        with redis_server(tmp_path_factory.mktemp("redis")) as server:
            yield server
    except ServiceMissing as exc:
        pytest.fail(str(exc), pytrace=False)


def make_settings(couchdb: CouchServer, redis_url: str, **overrides: object) -> Settings:
    """Settings pointing at the test services with unique database names."""
    tag = uuid.uuid4().hex[:8]
    values: dict[str, object] = {
        "couchdb_url": couchdb.url,
        "couchdb_user": couchdb.user,
        "couchdb_password": couchdb.password,
        "couchdb_retries": 2,
        "redis_url": redis_url,
        "couchwatch_events_db": f"t{tag}_events",
        "couchwatch_db_prefix": f"t{tag}_cw_",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


@pytest.fixture
def settings(couchdb: CouchServer, redis_service: RedisServer) -> Settings:
    """Settings on the session's servers; the broker starts empty (no message of an earlier
    test's can reach this test's workers, which would run it against this test's databases)."""
    redis.Redis.from_url(redis_service.url).flushdb()
    return make_settings(couchdb, redis_service.url)


@pytest.fixture
def couch(settings: Settings) -> Iterator[CouchClient]:
    """A client on the test server; the test's databases are deleted afterwards."""
    client = CouchClient.from_settings(settings)
    yield client
    for db in (settings.events_db, *(settings.db_name(s) for s in DB_SUFFIXES)):
        client.delete_db(db)
    client.close()


def settings_env(settings: Settings) -> dict[str, str]:
    """Environment variables that reproduce `settings` in a child process."""
    env = {}
    for name, value in settings.masked().items():
        if value is not None:
            env[name] = json.dumps(value) if isinstance(value, list) else str(value)
    env["COUCHDB_PASSWORD"] = (
        settings.couchdb_password.get_secret_value() if settings.couchdb_password else ""
    )
    if settings.flower_password is not None:
        env["FLOWER_PASSWORD"] = settings.flower_password.get_secret_value()
    for name, secret in (
        ("COUCHWATCH_SMTP_PASSWORD", settings.couchwatch_smtp_password),
        ("COUCHWATCH_WEBHOOK_SECRET", settings.couchwatch_webhook_secret),
    ):
        if secret is not None:
            env[name] = secret.get_secret_value()
    env["COUCHWATCH_SMTP_TO"] = ",".join(settings.couchwatch_smtp_to)
    env["COUCHWATCH_WEBHOOK_URLS"] = ",".join(settings.couchwatch_webhook_urls)
    env["COUCHDB_URL"] = settings.couchdb_url
    env["REDIS_URL"] = settings.redis_url
    return env


__all__ = ["make_settings", "settings_env"]
