"""The one settings object of couchwatch, read once from the environment and an optional `.env`.

Secrets (`COUCHDB_PASSWORD`, `FLOWER_PASSWORD`, ...) have no defaults and are `SecretStr`, so
they never show up in a `repr`, a log line or `couchwatch config`. This module imports nothing
heavy: the light producer client in `scheduler/` uses it too.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DB_SUFFIXES = ("models", "anomalies", "notifications", "runs", "quarantine")


class Settings(BaseSettings):
    """Typed configuration. Field names map to upper-case environment variables."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True
    )

    couchdb_url: str = "http://127.0.0.1:5984"
    couchdb_user: str | None = None
    couchdb_password: SecretStr | None = None
    couchdb_timeout_s: float = 30.0
    couchdb_retries: int = 4

    redis_url: str = "redis://127.0.0.1:6379/0"

    couchwatch_events_db: str = "events"
    couchwatch_db_prefix: str = "couchwatch_"
    couchwatch_entity_field: str = "user_id"
    couchwatch_ingest_batch_size: int = Field(default=500, ge=1, le=10_000)
    couchwatch_state_dir: str = ".couchwatch"

    # Fleet: batching, schedules, model retention
    couchwatch_batch_size: int = Field(default=50, ge=1, le=5000)
    couchwatch_score_interval_s: float = Field(default=60.0, gt=0)
    couchwatch_train_check_interval_s: float = Field(default=3600.0, gt=0)
    couchwatch_retrain_after_s: float = Field(default=86_400.0, gt=0)
    couchwatch_retrain_min_new_events: int = Field(default=500, ge=1)
    couchwatch_history_days: int = Field(default=90, ge=1)
    couchwatch_model_keep_versions: int = Field(default=3, ge=1)
    couchwatch_model_cache_size: int = Field(default=256, ge=1)
    couchwatch_changes_page_size: int = Field(default=1000, ge=1, le=10_000)
    couchwatch_population_sample: int = Field(default=200, ge=1)

    # Celery (see workers/celery_app.py for what each protects against)
    celery_task_soft_time_limit_s: int = 540
    celery_task_time_limit_s: int = 600
    celery_visibility_timeout_s: int = 3600
    celery_result_expires_s: int = 86_400
    celery_max_tasks_per_child: int = 200

    flower_user: str | None = None
    flower_password: SecretStr | None = None
    flower_port: int = 5555
    flower_address: str = "127.0.0.1"

    @field_validator("couchwatch_entity_field")
    @classmethod
    def _entity_field_is_plain(cls, value: str) -> str:
        if not value or value.startswith("_") or "." in value or len(value) > 64:
            raise ValueError("COUCHWATCH_ENTITY_FIELD must be a plain top-level field name")
        return value

    @field_validator("couchdb_url")
    @classmethod
    def _couchdb_url_is_http(cls, value: str) -> str:
        if urlsplit(value).scheme not in ("http", "https"):
            raise ValueError("COUCHDB_URL must start with http:// or https://")
        return value.rstrip("/")

    def db_name(self, suffix: str) -> str:
        """Return the name of one of couchwatch's own databases, e.g. `couchwatch_models`."""
        if suffix not in DB_SUFFIXES:
            raise ValueError(f"unknown couchwatch database {suffix!r}")
        return f"{self.couchwatch_db_prefix}{suffix}"

    @property
    def events_db(self) -> str:
        return self.couchwatch_events_db

    @property
    def entity_field(self) -> str:
        return self.couchwatch_entity_field

    def couchdb_credentials(self) -> tuple[str, str] | None:
        """Return (user, password) from the settings or from user info in `COUCHDB_URL`."""
        parts = urlsplit(self.couchdb_url)
        if self.couchdb_user and self.couchdb_password is not None:
            return self.couchdb_user, self.couchdb_password.get_secret_value()
        if parts.username and parts.password:
            return unquote(parts.username), unquote(parts.password)
        return None

    def couchdb_base_url(self) -> str:
        """`COUCHDB_URL` without any user info, safe to print."""
        return strip_userinfo(self.couchdb_url)

    def masked(self) -> dict[str, Any]:
        """All settings as printable values: secrets and URL passwords replaced by `***`."""
        shown: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                value = "***"
            elif isinstance(value, str) and name.endswith("_url"):
                value = mask_url_password(value)
            shown[name.upper()] = value
        return shown


def strip_userinfo(url: str) -> str:
    """Return `url` without `user:password@`."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")[2]  # keeps `[::1]` brackets and the port as written
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def mask_url_password(url: str) -> str:
    """Return `url` with any password replaced by `***` (the user name stays)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.netloc.rpartition('@')[2]}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings, read on first use (never at import)."""
    return Settings()
