"""Deployment settings, read from ``PATRONLINK_*`` environment variables.

Built once at start-up by the composition root (``bootstrap``, ``Settings.from_environ``) and
passed down; nothing reads the environment at import time. What libraries configure (agencies,
gateways, users, sources) lives in the database.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings.sources.utils import parse_env_vars

from patronlink.domain.dispatch import DispatchSettings
from patronlink.domain.import_runs import IMPORT_LEASE

# The dispatcher's defaults, written once (in the domain).
_DISPATCH = DispatchSettings()

DEFAULT_DATABASE_URL = "sqlite:///./var/patronlink.db"

# The environment that ``Settings.from_environ`` is building from (None: pydantic-settings' own).
_ENVIRON: ContextVar[Mapping[str, str] | None] = ContextVar("patronlink_environ", default=None)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PATRONLINK_", extra="ignore")

    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        description="SQLAlchemy URL; SQLite under ./var/ by default, "
        "postgresql+psycopg://user@host/db for several processes",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    public_url: str | None = Field(
        default=None,
        description="the base URL at which SMS providers reach this server (delivery reports, "
        "inbound texts); default http://{host}:{port}",
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "console"] = "json"
    default_agency: str | None = Field(
        default=None,
        description="agency served at /rest-dlf/patron/ (the Aleph path without an agency id)",
    )
    sqlite_busy_timeout_ms: int = Field(default=5000, ge=0)
    dispatch_batch_size: int = Field(default=_DISPATCH.batch_size, ge=1, le=5000)
    dispatch_max_in_flight: int = Field(default=_DISPATCH.max_in_flight, ge=1, le=10000)
    dispatch_lease_seconds: float = Field(default=_DISPATCH.lease_seconds, gt=0)
    dispatch_poll_seconds: float = Field(default=_DISPATCH.poll_seconds, gt=0)
    retry_base_seconds: float = Field(default=_DISPATCH.retry.base_seconds, ge=0)
    retry_cap_seconds: float = Field(default=_DISPATCH.retry.cap_seconds, ge=0)
    scheduler_interval_seconds: float = Field(default=30.0, gt=0)
    import_lease_seconds: float = Field(
        default=IMPORT_LEASE.total_seconds(),
        ge=1,
        description="how long an import run's hold on its source lasts unless renewed (a live "
        "run renews it every quarter of this; a killed run blocks its source this long)",
    )
    # Production operations (issue 14): loops that survive the database, a watchable worker.
    backoff_cap_seconds: float = Field(
        default=30.0,
        gt=0,
        description="the longest wait of a loop (dispatcher, scheduler, serve's worker) before "
        "it tries the database again after a failure (waits double from 0.5 s)",
    )
    gateway_failures_before_warning: int = Field(
        default=_DISPATCH.gateway_failures_before_warning,
        ge=1,
        description="temporary failures in a row of one agency's gateway before the worker "
        "logs one warning (and one line when it answers again)",
    )
    worker_metrics_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="where `patronlink worker` serves /metrics, /healthz and /readyz "
        "(private: no token); off when unset",
    )
    worker_metrics_host: str = Field(
        default="127.0.0.1", description="the address of the worker's metrics port"
    )
    log_patron_data: bool = Field(
        default=False,
        description="keep patrons' numbers and texts in the access log's query strings "
        "(redacted by default)",
    )
    inbound_failures_before_throttle: int = Field(default=5, ge=1)
    inbound_throttle_seconds: int = Field(default=60, ge=1)
    # Staff web UI (docs/staff-ui.md). Without a secret key one is made at start-up, and every
    # staff session ends when the process restarts (and differs between processes).
    secret_key: str | None = Field(
        default=None, min_length=32, description="signs the staff UI's session cookie"
    )
    cookie_secure: bool = Field(
        default=False, description="send the staff session cookie over HTTPS only"
    )
    staff_session_hours: float = Field(default=12.0, gt=0, le=24 * 30)
    staff_login_failures_before_throttle: int = Field(default=5, ge=1)
    staff_login_throttle_seconds: int = Field(default=300, ge=1)
    # Security, second round (issue 13; docs/operations.md, "Security").
    staff_session_idle_minutes: float = Field(
        default=30.0, gt=0, description="a staff session unused this long ends"
    )
    throttle_max_block_seconds: int = Field(
        default=3600, ge=1, description="the longest block of the doubling login back-off"
    )
    throttle_trust_days: float = Field(
        default=30.0,
        ge=0,
        description="after a good login, the per-user limit spares that address this long",
    )
    # Generous: an Aleph client is often a library's web portal, one address for all patrons.
    registration_failures_before_throttle: int = Field(default=30, ge=1)
    registration_throttle_seconds: int = Field(default=300, ge=1)
    metrics_token: SecretStr | None = Field(
        default=None,
        min_length=16,
        description="bearer token that /metrics asks for (Authorization: Bearer ...)",
    )
    metrics_public: bool = Field(
        default=False, description="serve /metrics without a token (behind a trusted proxy)"
    )
    metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="serve /metrics on this port of PATRONLINK_HOST instead of the main port",
    )

    # Operations (issue 14) ------------------------------------------------------------------
    database_pool_size: int = Field(
        default=10,
        ge=1,
        le=1000,
        description="PostgreSQL connections each process keeps open (plan for the sum over "
        "every process: (pool_size + max_overflow) x processes, below max_connections)",
    )
    database_max_overflow: int = Field(
        default=10,
        ge=0,
        le=1000,
        description="extra PostgreSQL connections a process opens at peaks",
    )
    database_application_name: str | None = Field(
        default=None,
        max_length=63,
        description="application_name of PostgreSQL connections (pg_stat_activity); default "
        "'patronlink <command>', e.g. 'patronlink worker'",
    )
    migration_lock_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        description="how long a migration statement waits for a table lock before "
        "`db upgrade` rolls back and tries again",
    )
    migration_attempts: int = Field(default=5, ge=1, le=100)
    allow_newer_schema: bool = Field(
        default=False,
        description="start although the database was migrated by a newer version (for rolling "
        "upgrades over migrations that docs/operations.md lists as safe)",
    )
    start_paused: bool = Field(
        default=False,
        description="pause sending everywhere when the worker starts (`sms resume` ends it); "
        "for restores",
    )
    dispatch_max_age_seconds: float = Field(
        default=_DISPATCH.max_age_seconds,
        ge=0,
        description="a text not yet tried this long after its send time goes to the error queue "
        "instead of out (0: never)",
    )
    idempotency_key_hours: float = Field(
        default=24.0,
        gt=0,
        le=24 * 30,
        description="how long an Idempotency-Key of POST .../messages is remembered",
    )

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], **overrides: Any) -> Settings:
        """The settings of ``environ``'s ``PATRONLINK_*`` variables, read the way
        ``Settings()`` reads the process's; ``overrides`` win over them."""
        token = _ENVIRON.set(environ)
        try:
            return cls(**overrides)
        finally:
            _ENVIRON.reset(token)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        environ = _ENVIRON.get()
        if environ is None:
            return (init_settings, env_settings, dotenv_settings, file_secret_settings)
        return (init_settings, _MappingSource(settings_cls, environ))

    @field_validator("database_url")
    @classmethod
    def _normalise_postgres_scheme(cls, value: str) -> str:
        # Operators paste libpq-style URLs; SQLAlchemy would pick psycopg2, which we do not ship.
        for prefix in ("postgres://", "postgresql://"):
            if value.startswith(prefix):
                return "postgresql+psycopg://" + value[len(prefix) :]
        # A relative SQLite path is made absolute once, at start: every message can then name
        # the file, and a command run from another folder says where it looked.
        head, sep, rest = value.partition(":///")
        if head.startswith("sqlite") and sep and rest and not rest.startswith((":memory:", "/")):
            path, qmark, query = rest.partition("?")
            return f"{head}:///{Path(path).resolve()}{qmark}{query}"
        return value

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def sqlite_path(self) -> Path | None:
        if not self.is_sqlite:
            return None
        path = self.database_url.split(":///", 1)[-1]
        return None if path in ("", ":memory:") else Path(path)

    def callback_base(self) -> str:
        """Where providers reach this server: ``public_url``, or ``http://{host}:{port}``."""
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")


class _MappingSource(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping, not the process's."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(
            self._environ, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str
        )
