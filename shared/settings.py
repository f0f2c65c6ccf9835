"""One settings object for every service, read from INFRAWATCH_* environment variables."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Self

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DAY = 86400


class Settings(BaseSettings):
    """Validated configuration; building it never touches the network."""

    model_config = SettingsConfigDict(env_prefix="INFRAWATCH_", extra="ignore")

    nats_url: str = "nats://127.0.0.1:4222"
    nats_user: str | None = None
    nats_password: str | None = Field(default=None, repr=False)
    nats_creds: Path | None = None  # a .creds file (JWT + nkey seed)
    nats_nkey_seed: Path | None = None  # a file holding a user's nkey seed (SU...)
    nats_tls_ca: Path | None = None  # CA bundle that signed the server's certificate
    nats_tls_cert: Path | None = None  # client certificate, for servers that verify clients
    nats_tls_key: Path | None = None  # its private key
    nats_tls_hostname: str | None = None  # name to check the server's certificate against (default: the URL's host)
    database_url: str = "postgresql://postgres@127.0.0.1:5432/infrawatch"
    subject_prefix: str = "infra"
    instance: str = Field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    data_dir: Path = Path(".infrawatch")
    log_level: str = "INFO"

    # JetStream
    stream_replicas: int = 1
    duplicate_window_s: int = 120
    collected_max_age_s: int = 7 * DAY
    audit_max_age_s: int = 7 * DAY
    perf_max_age_s: int = 7 * DAY
    alert_max_age_s: int = 0  # 0 = never expire
    dlq_max_age_s: int = 0

    # Performance counters: published every perf_interval_s on <prefix>.perf.<service>, and served
    # as Prometheus text on http://metrics_host:<port>/metrics (0 = the service's default port,
    # -1 = off). A busy port is logged, not fatal.
    perf_interval_s: float = 60.0
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 0

    # SSH
    ssh_known_hosts: Path | None = None  # default: <data_dir>/known_hosts
    ssh_client_keys: list[Path] = []
    ssh_username: str = "root"
    ssh_connect_timeout_s: float = 10.0
    ssh_keepalive_s: float = 15.0
    ssh_keepalive_count_max: int = 3  # unanswered keepalives before the connection counts as lost
    # A password, for devices that accept no key: the NAME of an environment variable holding
    # it, or a file holding it (first line). Never logged, never put in an event.
    ssh_password_env: str | None = None
    ssh_password_file: Path | None = None
    ssh_max_channels: int = 8  # commands at once on one device's connection (OpenSSH MaxSessions: 10)

    # Collector
    freshness_overrides: dict[str, int] = {}

    # Writer
    writer_batch_size: int = 1000
    writer_batch_wait_s: float = 0.5
    writer_durable: str = "writer"

    # Database retention (applied when TimescaleDB is present)
    metrics_retention_days: int = 90

    # API
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_plain_http_public: bool = False  # allow a non-loopback api_host: plain HTTP, behind your TLS proxy

    @field_validator("subject_prefix")
    @classmethod
    def _prefix_is_token(cls, v: str) -> str:
        if not v or any(c in v for c in " .*>\t\r\n"):
            raise ValueError("subject_prefix must be a single NATS subject token")
        return v

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, v: str) -> str:
        if not v.startswith(("postgresql://", "postgres://", "postgresql+asyncpg://")):
            raise ValueError("database_url must be a postgresql:// URL")
        return v

    @classmethod
    def of(cls, settings: Settings) -> Self:
        """``settings`` as this class: its values, plus this class's own fields from the environment."""
        return settings if isinstance(settings, cls) else cls(**settings.model_dump())

    @property
    def asyncpg_dsn(self) -> str:
        """The database URL in the form asyncpg accepts."""
        return "postgresql://" + self.database_url.split("://", 1)[1]

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL for SQLAlchemy's asyncpg dialect."""
        return "postgresql+asyncpg://" + self.database_url.split("://", 1)[1]

    @property
    def known_hosts_path(self) -> Path:
        return self.ssh_known_hosts or self.data_dir / "known_hosts"


def redact_url(url: str) -> str:
    """Hide the password of a URL before it is logged."""
    if "://" not in url or "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else url


def api_bind_problem(settings: Settings) -> str | None:
    """Why the API must not listen where the settings say (None: it may). It speaks plain HTTP,
    so it stays on loopback unless INFRAWATCH_API_PLAIN_HTTP_PUBLIC says a TLS proxy guards it."""
    import ipaddress

    host = settings.api_host.strip("[]")
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if loopback or settings.api_plain_http_public:
        return None
    return (f"INFRAWATCH_API_HOST={settings.api_host} would serve API keys in plain HTTP beyond this host: "
            "keep it on 127.0.0.1 behind a TLS proxy (deploy/caddy), or, when the network between the "
            "proxy and the API is private, set INFRAWATCH_API_PLAIN_HTTP_PUBLIC=true")
