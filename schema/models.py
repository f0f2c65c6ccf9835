"""SQLAlchemy 2.0 models of the unified schema.

Time-series tables carry ``device_id`` without a foreign key: the database is a projection of
the streams, and a rebuild may project a device's metrics before its registration. Devices are
soft-deleted (``deleted_at``), so their history stays readable. Every unique key of a
time-series table includes ``time``, as TimescaleDB hypertables require.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Index,
    Integer,
    Numeric,
    String,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from schema.base import Base
from shared.datatypes import REGISTRY


class Device(Base):
    __tablename__ = "devices"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(63))
    address: Mapped[str]
    port: Mapped[int] = mapped_column(default=22)
    username: Mapped[str | None]
    transport: Mapped[str] = mapped_column(default="ssh")
    trust_on_first_use: Mapped[bool] = mapped_column(default=False)
    device_type: Mapped[str | None]
    description: Mapped[str | None]
    tags: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=text("'{}'::jsonb"))
    enabled: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())
    deleted_at: Mapped[datetime | None]
    stream_seq: Mapped[int] = mapped_column(default=0, comment="devices-stream sequence last applied")

    __table_args__ = (
        Index("uq_devices_live_name", "name", unique=True, postgresql_where=text("deleted_at IS NULL")),
    )


class DataCollectionAudit(Base):
    __tablename__ = "data_collection_audit"

    time: Mapped[datetime] = mapped_column(primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    device_id: Mapped[uuid.UUID | None]
    operation_id: Mapped[uuid.UUID]
    data_type: Mapped[str]
    collection_method: Mapped[str]
    collection_source: Mapped[str | None] = mapped_column(comment="service/instance")
    trigger: Mapped[str]
    force_refresh: Mapped[bool] = mapped_column(default=False)
    cache_hit: Mapped[bool] = mapped_column(default=False)
    duration_ms: Mapped[int | None]
    ssh_command_count: Mapped[int] = mapped_column(default=0)
    data_size_bytes: Mapped[int | None]
    status: Mapped[str]
    error_message: Mapped[str | None]
    warnings: Mapped[list[Any] | None]
    records_created: Mapped[int] = mapped_column(default=0)
    records_updated: Mapped[int] = mapped_column(default=0)
    freshness_threshold: Mapped[int | None]

    __table_args__ = (
        Index("ix_audit_device_time", "device_id", text("time DESC")),
        Index("ix_audit_operation", "operation_id"),
    )


class ConfigFileChange:
    """What both configuration tables record of one change of one file."""

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    time: Mapped[datetime] = mapped_column(primary_key=True)
    device_id: Mapped[uuid.UUID]
    config_type: Mapped[str]
    file_path: Mapped[str]
    change_type: Mapped[str]
    affected_services: Mapped[list[Any] | None]
    requires_restart: Mapped[bool] = mapped_column(default=False)
    risk_level: Mapped[str] = mapped_column(default="MEDIUM")


class ConfigurationSnapshot(ConfigFileChange, Base):
    __tablename__ = "configuration_snapshots"

    event_id: Mapped[uuid.UUID]
    content_hash: Mapped[str]
    file_size_bytes: Mapped[int | None]
    raw_content: Mapped[str | None]
    content_truncated: Mapped[bool] = mapped_column(default=False)
    parsed_data: Mapped[dict[str, Any] | None]
    previous_hash: Mapped[str | None]
    file_modified_time: Mapped[datetime | None]
    collection_source: Mapped[str]
    detection_latency_ms: Mapped[int | None]

    # Paths reach 4 KiB, past a btree entry's limit: a hash index finds a path's versions.
    __table_args__ = (
        Index("ix_config_snapshots_device_time", "device_id", text("time DESC")),
        Index("ix_config_snapshots_path", "file_path", postgresql_using="hash"),
    )


class ConfigurationChangeEvent(ConfigFileChange, Base):
    __tablename__ = "configuration_change_events"

    snapshot_id: Mapped[uuid.UUID]
    old_path: Mapped[str | None]
    service_dependencies: Mapped[list[Any] | None]
    restart_services: Mapped[list[Any] | None]
    changes_summary: Mapped[dict[str, Any] | None]
    confidence_score: Mapped[Decimal | None] = mapped_column(Numeric)
    processed: Mapped[bool] = mapped_column(default=False)
    notifications_sent: Mapped[list[Any] | None]

    __table_args__ = (
        Index("ix_config_changes_device_time", "device_id", text("time DESC")),
        Index("ix_config_changes_snapshot", "snapshot_id"),
    )


class ServicePerformanceMetric(Base):
    __tablename__ = "service_performance_metrics"

    time: Mapped[datetime] = mapped_column(primary_key=True)
    service_name: Mapped[str] = mapped_column(primary_key=True)
    instance: Mapped[str] = mapped_column(primary_key=True)
    operations_total: Mapped[int] = mapped_column(default=0)
    operations_successful: Mapped[int] = mapped_column(default=0)
    operations_failed: Mapped[int] = mapped_column(default=0)
    operations_cached: Mapped[int] = mapped_column(default=0)
    avg_duration_ms: Mapped[Decimal | None] = mapped_column(Numeric)
    max_duration_ms: Mapped[int | None]
    min_duration_ms: Mapped[int | None]
    ssh_connections_created: Mapped[int] = mapped_column(default=0)
    ssh_connections_reused: Mapped[int] = mapped_column(default=0)
    ssh_commands_executed: Mapped[int] = mapped_column(default=0)
    cache_hit_ratio: Mapped[Decimal | None] = mapped_column(Numeric)
    cache_size_entries: Mapped[int | None]
    cache_evictions: Mapped[int] = mapped_column(default=0)
    data_collected_bytes: Mapped[int] = mapped_column(default=0)
    database_writes: Mapped[int] = mapped_column(default=0)
    error_types: Mapped[dict[str, Any] | None]
    top_errors: Mapped[list[Any] | None]


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16), unique=True, comment="visible part of the key")
    key_hash: Mapped[str] = mapped_column(String(64), comment="sha256 of the whole key")
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    last_used_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


TIME_SERIES_TABLES = (
    "system_metrics", "container_snapshots", "drive_health", "data_collection_audit",
    "configuration_snapshots", "configuration_change_events", "service_performance_metrics",
)


# --- Alerts (revision 0003) ---------------------------------------------------------------------


class AlertRule(Base):
    """A threshold rule; the API mirrors every change into the rules KV bucket the evaluator watches."""

    __tablename__ = "alert_rules"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True, comment="a subject token")
    device_id: Mapped[uuid.UUID | None] = mapped_column(comment="NULL: every device")
    metric: Mapped[str] = mapped_column(String(32))
    selector: Mapped[str | None] = mapped_column(String(255), comment="mount, drive, container, unit, pool… glob")
    operator: Mapped[str] = mapped_column(String(2))
    threshold: Mapped[float]
    duration_s: Mapped[int] = mapped_column(Integer, default=0)
    refire_interval_s: Mapped[int] = mapped_column(Integer, default=3600)
    enabled: Mapped[bool] = mapped_column(default=True)
    webhook_url: Mapped[str | None]
    webhook_format: Mapped[str] = mapped_column(String(16), default="json")
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())
    cause_window_s: Mapped[int] = mapped_column(server_default=text("1800"),
                                                comment="look-back window of the likely causes, seconds")
    cause_top: Mapped[int] = mapped_column(server_default=text("5"),
                                           comment="how many likely causes a fired alert carries")


class AlertEvent(Base):
    """One alert fired or resolved (an ``AlertChanged`` event)."""

    __tablename__ = "alert_events"

    time: Mapped[datetime] = mapped_column(primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    rule_id: Mapped[uuid.UUID]
    rule_name: Mapped[str]
    device_id: Mapped[uuid.UUID]
    metric: Mapped[str]
    state: Mapped[str] = mapped_column(comment="fired or resolved")
    value: Mapped[float]
    threshold: Mapped[float]
    operator: Mapped[str]
    since: Mapped[datetime]
    refire: Mapped[bool] = mapped_column(default=False)
    detail: Mapped[str | None]
    message: Mapped[str | None]
    causes: Mapped[list[Any] | None] = mapped_column(comment="likely causes, likeliest first (fired alerts only)")

    __table_args__ = (
        Index("ix_alert_events_device_time", "device_id", text("time DESC")),
        Index("ix_alert_events_rule_time", "rule_id", text("time DESC")),
    )


class AlertNotification(Base):
    """The outcome of one webhook delivery (a ``NotificationAttempted`` event); ``url`` is redacted."""

    __tablename__ = "alert_notifications"

    time: Mapped[datetime] = mapped_column(primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    alert_event_id: Mapped[uuid.UUID]
    rule_id: Mapped[uuid.UUID]
    device_id: Mapped[uuid.UUID]
    url: Mapped[str] = mapped_column(comment="scheme, host and port only")
    format: Mapped[str]
    attempts: Mapped[int]
    status: Mapped[str] = mapped_column(comment="delivered or failed")
    http_status: Mapped[int | None]
    last_error: Mapped[str | None]

    __table_args__ = (Index("ix_alert_notifications_alert", "alert_event_id"),)


ALERT_TIME_SERIES_TABLES = ("alert_events", "alert_notifications")


# Each collected data type defines its tables in its folder (shared/datatypes/<type>/table.py);
# importing the registry adds them to Base.metadata.
DATA_TYPE_TABLES: tuple[str, ...] = tuple(m.__tablename__ for t in REGISTRY.values() for m in t.tables)

COLLECTOR_TABLES = ("network_interfaces", "zfs_pools", "systemd_snapshots", "inventory_snapshots")
"""Time-series tables of revision 0002 (TIME_SERIES_TABLES are those of 0001)."""


# --- Fleet configuration (revision 0008) ---------------------------------------------------------


class ConfigCurrent(Base):
    """The latest version of every watched file of every device (a deleted file's row stays, with
    ``change_type`` DELETE), kept by the writer; what fleet search, drift and policies read."""

    __tablename__ = "config_current"

    device_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    path_key: Mapped[uuid.UUID] = mapped_column(primary_key=True, comment="md5(file_path)::uuid")
    file_path: Mapped[str]
    config_type: Mapped[str]
    time: Mapped[datetime]
    snapshot_id: Mapped[uuid.UUID]
    event_id: Mapped[uuid.UUID]
    change_type: Mapped[str]
    content_hash: Mapped[str]
    parsed: Mapped[dict[str, Any] | None] = mapped_column(comment="the config type's parsed data")

    # jsonb_ops, not jsonb_path_ops: only it serves the .* accessor the parsed maps need
    __table_args__ = (
        Index("ix_config_current_parsed", "parsed", postgresql_using="gin"),
        Index("ix_config_current_type_hash", "config_type", "content_hash"),
    )


class ConfigPolicy(Base):
    """A policy on parsed configuration: config type + JSONPath condition + severity + message.
    Written by the API (``builtin`` rows are the default pack it seeds); read by the policy evaluator."""

    __tablename__ = "config_policies"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True, comment="a subject token")
    config_type: Mapped[str] = mapped_column(String(50))
    jsonpath: Mapped[str] = mapped_column(comment="a PostgreSQL jsonpath over the parsed data")
    severity: Mapped[str] = mapped_column(String(16))
    message: Mapped[str]
    description: Mapped[str | None]
    enabled: Mapped[bool] = mapped_column(default=True)
    device_id: Mapped[uuid.UUID | None] = mapped_column(comment="NULL: every device (that has the tags)")
    tags: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=text("'{}'::jsonb"),
                                                 comment="every tag must match; {}: any device")
    builtin: Mapped[bool] = mapped_column(default=False)
    webhook_url: Mapped[str | None]
    webhook_format: Mapped[str] = mapped_column(String(16), default="json")
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class ConfigViolationRecord(Base):
    """One violation of one policy by one file, open until a later version no longer matches.
    Written by the policy evaluator in the transaction that decides it; ``published`` and
    ``notified`` say whether its last transition reached the alert stream and the webhook."""

    __tablename__ = "config_violations"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    policy_id: Mapped[uuid.UUID]
    policy_name: Mapped[str]
    severity: Mapped[str]
    message: Mapped[str]
    device_id: Mapped[uuid.UUID]
    config_type: Mapped[str]
    file_path: Mapped[str]
    path_key: Mapped[uuid.UUID]
    state: Mapped[str] = mapped_column(comment="open or resolved")
    matches: Mapped[list[Any] | None]
    match_count: Mapped[int] = mapped_column(default=0)
    opened_at: Mapped[datetime] = mapped_column(comment="time of the introducing version")
    introduced_by: Mapped[dict[str, Any]]
    resolved_at: Mapped[datetime | None]
    fixed_by: Mapped[dict[str, Any] | None]
    resolution: Mapped[str | None]
    fired_event_id: Mapped[uuid.UUID]
    resolved_event_id: Mapped[uuid.UUID | None]
    published: Mapped[bool] = mapped_column(default=False)
    notified: Mapped[bool] = mapped_column(default=False)
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())

    __table_args__ = (
        Index("uq_config_violations_open", "policy_id", "device_id", "path_key", unique=True,
              postgresql_where=text("state = 'open'")),
        Index("ix_config_violations_file", "device_id", "path_key"),
        Index("ix_config_violations_state", "state", "severity"),
        Index("ix_config_violations_outbox", "published", "notified",
              postgresql_where=text("NOT (published AND notified)")),
    )


class ConfigPolicyProgress(Base):
    """The last change of each file the policy evaluator applied: an older or repeated one is skipped."""

    __tablename__ = "config_policy_progress"

    device_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    path_key: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    time: Mapped[datetime]
    event_id: Mapped[uuid.UUID]
