"""The one settings object of couchwatch, read once from the environment and an optional `.env`.

Secrets (`COUCHDB_PASSWORD`, `FLOWER_PASSWORD`, ...) have no defaults and are `SecretStr`, so
they never show up in a `repr`, a log line or `couchwatch config`. This module imports nothing
heavy: the light producer client in `scheduler/` uses it too.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit, urlunsplit

from pydantic import BeforeValidator, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DB_SUFFIXES = (
    "models",
    "anomalies",
    "notifications",
    "runs",
    "quarantine",
    "apikeys",
    "incidents",
)


def _split_list(value: Any) -> Any:
    """`a@x, b@y` (or a JSON list) from the environment as a list of stripped strings."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            import json

            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


# Celery autoretry countdowns are capped here (workers/tasks.py): a retried message waits that
# long in a worker, unacked, before it runs, so the default visibility timeout covers it + 60 s.
RETRY_BACKOFF_MAX_S = 120
VISIBILITY_MARGIN_S = RETRY_BACKOFF_MAX_S + 60

TextList = Annotated[list[str], NoDecode, BeforeValidator(_split_list)]


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
    # `_security` members of every couchwatch database besides the admin (docs/couchdb.md):
    # CouchDB user names and roles the fleet runs as. Prefer a role: only an admin can give it.
    couchwatch_db_member_names: TextList = Field(default_factory=list)
    couchwatch_db_member_roles: TextList = Field(default_factory=lambda: ["couchwatch"])

    # Fleet: batching, schedules, model retention
    couchwatch_batch_size: int = Field(default=50, ge=1, le=5000)
    couchwatch_score_interval_s: float = Field(default=60.0, gt=0)
    couchwatch_train_check_interval_s: float = Field(default=3600.0, gt=0)
    couchwatch_retrain_after_s: float = Field(default=86_400.0, gt=0)
    couchwatch_retrain_min_new_events: int = Field(default=500, ge=1)
    couchwatch_history_days: int = Field(default=90, ge=1)
    # A retrain reads only the days with new events and fits the stored history summary; a
    # full read rebuilds the summary at least this often (docs/operations.md, "Retraining").
    couchwatch_history_summaries: bool = True
    couchwatch_summary_rebuild_days: float = Field(default=7.0, gt=0)
    couchwatch_max_train_failures: int = Field(default=5, ge=1)
    couchwatch_model_keep_versions: int = Field(default=3, ge=1)
    couchwatch_model_cache_size: int = Field(default=256, ge=1)
    couchwatch_changes_page_size: int = Field(default=1000, ge=1, le=10_000)
    couchwatch_population_sample: int = Field(default=200, ge=1)
    couchwatch_population_events_per_entity: int = Field(default=1000, ge=1)
    # Events that waited for an entity's first model (nothing could score them: no model, no
    # population profile yet) are kept as its history (the first model's training data) unless
    # this is true, then they are scored with that model (docs/operations.md).
    couchwatch_score_first_history: bool = False

    # Detection (docs/detectors.md): the engine is built from these, validated at worker start
    couchwatch_detectors: TextList = Field(
        default_factory=lambda: ["robust_zscore", "time_of_day", "seasonal", "novelty"]
    )
    couchwatch_combine: Literal["max", "fisher"] = "max"
    couchwatch_target_alert_rate: float = Field(default=0.002, gt=0, lt=0.5)
    couchwatch_window: str = "15min"
    couchwatch_min_train_windows: int = Field(default=30, ge=1)
    couchwatch_prior_windows: float = Field(default=10.0, ge=0)
    couchwatch_time_prior_strength: float = Field(default=1.5, gt=0)
    couchwatch_score_context_s: float = Field(default=86_400.0, ge=0)

    # Celery (see workers/celery_app.py for what each protects against)
    celery_task_soft_time_limit_s: int = 540
    celery_task_time_limit_s: int = 600
    # Unset: the hard time limit + VISIBILITY_MARGIN_S (780 s with the defaults); see
    # `visibility_timeout_s`. Set, it must exceed the hard time limit.
    celery_visibility_timeout_s: int | None = Field(default=None, ge=1)
    celery_result_expires_s: int = 86_400
    celery_max_tasks_per_child: int = 200
    # Workers beat in Redis this often; a survivor requeues the unacked messages of a worker
    # silent for 3 beats (workers/liveness.py). 0 turns it off (visibility timeout only).
    couchwatch_worker_heartbeat_s: float = Field(default=10.0, ge=0)
    # An entity enqueued for training is not enqueued again for this long (or until trained)
    couchwatch_train_pending_ttl_s: int = Field(default=3600, ge=1)

    # Notifications (docs/notifications.md). Lists are comma-separated in the environment.
    couchwatch_notify_severity: Literal["low", "medium", "high"] = "high"
    couchwatch_notify_rate_limit: int = Field(default=1, ge=1, le=1000)
    couchwatch_notify_rate_window_s: float = Field(default=600.0, gt=0)
    couchwatch_notify_max_attempts: int = Field(default=8, ge=1, le=100)
    couchwatch_notify_backoff_s: float = Field(default=60.0, gt=0)
    couchwatch_notify_backoff_max_s: float = Field(default=3600.0, gt=0)
    couchwatch_notify_review_hint: str = "couchwatch review {id} confirm|dismiss"
    # Incidents (docs/incidents.md): anomalies of one entity this close (seconds) chain together
    couchwatch_incident_gap_s: float = Field(default=3600.0, ge=0)
    couchwatch_smtp_host: str | None = None
    couchwatch_smtp_port: int = 587
    couchwatch_smtp_starttls: bool = True
    couchwatch_smtp_ssl: bool = False
    couchwatch_smtp_user: str | None = None
    couchwatch_smtp_password: SecretStr | None = None
    couchwatch_smtp_from: str = "couchwatch@localhost"
    couchwatch_smtp_to: TextList = Field(default_factory=list)
    couchwatch_smtp_timeout_s: float = Field(default=15.0, gt=0)
    couchwatch_webhook_urls: TextList = Field(default_factory=list, repr=False)  # may hold tokens
    couchwatch_webhook_secret: SecretStr | None = None
    couchwatch_webhook_timeout_s: float = Field(default=10.0, gt=0)

    # HTTP API (docs/api.md)
    couchwatch_api_max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    couchwatch_api_max_events: int = Field(default=1000, ge=1, le=10_000)
    couchwatch_api_docs: bool = False  # Swagger UI at /docs, from local files only (docs/api.md)

    flower_user: str | None = None
    flower_password: SecretStr | None = None
    flower_port: int = 5555
    flower_address: str = "127.0.0.1"
    couchwatch_api_port: int = 8080  # the local stack's API and review page (on 127.0.0.1)

    @field_validator("couchwatch_entity_field")
    @classmethod
    def _entity_field_is_plain(cls, value: str) -> str:
        if not value or value.startswith("_") or "." in value or len(value) > 64:
            raise ValueError("COUCHWATCH_ENTITY_FIELD must be a plain top-level field name")
        return value

    @field_validator("couchwatch_db_member_names", "couchwatch_db_member_roles")
    @classmethod
    def _members_are_plain(cls, value: list[str]) -> list[str]:
        if any(not v or v.startswith("_") or len(v) > 256 for v in value):
            raise ValueError("COUCHWATCH_DB_MEMBER_NAMES/ROLES: names without a leading _")
        return value

    @field_validator("couchdb_url")
    @classmethod
    def _couchdb_url_is_http(cls, value: str) -> str:
        if urlsplit(value).scheme not in ("http", "https"):
            raise ValueError("COUCHDB_URL must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("couchwatch_webhook_urls")
    @classmethod
    def _webhooks_are_http(cls, value: list[str]) -> list[str]:
        if any(urlsplit(url).scheme not in ("http", "https") for url in value):
            raise ValueError("COUCHWATCH_WEBHOOK_URLS must be http:// or https:// URLs")
        return value

    @model_validator(mode="after")
    def _visibility_exceeds_time_limit(self) -> Settings:
        vt = self.celery_visibility_timeout_s
        if vt is not None and vt <= self.celery_task_time_limit_s:
            raise ValueError(
                f"CELERY_VISIBILITY_TIMEOUT_S ({vt}) must exceed CELERY_TASK_TIME_LIMIT_S "
                f"({self.celery_task_time_limit_s}), or a slow task is delivered twice; "
                "leave it unset for the time limit + 180 s"
            )
        return self

    @property
    def visibility_timeout_s(self) -> int:
        """Seconds a received message may stay unacked before any worker requeues it.

        Unset, the hard time limit + `VISIBILITY_MARGIN_S`: a message is unacked from receipt to
        the end of its task, which includes waiting out a retry countdown (at most
        `RETRY_BACKOFF_MAX_S`) and at most the hard time limit of running.
        """
        if self.celery_visibility_timeout_s is not None:
            return self.celery_visibility_timeout_s
        return self.celery_task_time_limit_s + VISIBILITY_MARGIN_S

    @model_validator(mode="after")
    def _notify_channels_complete(self) -> Settings:
        if self.couchwatch_webhook_urls and self.couchwatch_webhook_secret is None:
            raise ValueError("COUCHWATCH_WEBHOOK_URLS needs COUCHWATCH_WEBHOOK_SECRET (signing)")
        if self.couchwatch_smtp_starttls and self.couchwatch_smtp_ssl:
            raise ValueError("set COUCHWATCH_SMTP_STARTTLS or COUCHWATCH_SMTP_SSL, not both")
        return self

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
            elif name.endswith("_urls"):  # webhook URLs often carry a token in the path
                value = [url_origin(u) + "/***" for u in value]
            shown[name.upper()] = value
        return shown


def strip_userinfo(url: str) -> str:
    """Return `url` without `user:password@`."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")[2]  # keeps `[::1]` brackets and the port as written
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def url_origin(url: str) -> str:
    """`scheme://host:port` of `url`: no user info, path or query (safe to print)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], "", "", ""))


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
