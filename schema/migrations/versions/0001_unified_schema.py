"""Unified schema: devices, time-series tables, API keys; TimescaleDB features when available.

Revision ID: 0001
Revises:
Create Date: 2025-01-01 00:00:00
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from schema.migrations import ddl
from schema.migrations.ddl import JSONB, TZ, UUID

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("schema.migrations")

TIME_SERIES_TABLES = (
    "system_metrics", "container_snapshots", "drive_health", "data_collection_audit",
    "configuration_snapshots", "configuration_change_events", "service_performance_metrics",
)
HOURLY_VIEW = "system_metrics_hourly"
SEGMENT_BY = {"service_performance_metrics": "service_name"}  # default: device_id
# Days to keep; None = never purged. The metrics tables follow INFRAWATCH_METRICS_RETENTION_DAYS.
RETENTION_DAYS: dict[str, int | None] = {
    "configuration_snapshots": None,
    "configuration_change_events": None,
    "data_collection_audit": 90,
    "service_performance_metrics": 30,
}
METRICS_TABLES = ("system_metrics", "container_snapshots", "drive_health")

_HOURLY_COLUMNS = """
    device_id,
    avg(cpu_usage) AS avg_cpu_usage,
    max(cpu_usage) AS max_cpu_usage,
    avg(memory_usage) AS avg_memory_usage,
    max(memory_usage) AS max_memory_usage,
    avg(load_1) AS avg_load_1,
    count(*) AS sample_count
FROM system_metrics
GROUP BY bucket, device_id"""


def upgrade() -> None:
    op.create_table(
        "devices",
        sa.Column("id", UUID, nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("address", sa.String(length=255), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=True),
        sa.Column("transport", sa.String(length=16), nullable=False),
        sa.Column("trust_on_first_use", sa.Boolean(), nullable=False),
        sa.Column("device_type", sa.String(length=50), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("tags", JSONB, server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", TZ, server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", TZ, server_default=sa.text("now()"), nullable=False),
        sa.Column("deleted_at", TZ, nullable=True),
        sa.Column("stream_seq", sa.BigInteger(), nullable=False, comment="devices-stream sequence last applied"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_devices")),
    )
    op.create_index("uq_devices_live_name", "devices", ["name"], unique=True,
                    postgresql_where=sa.text("deleted_at IS NULL"))

    ddl.series_table(
        "system_metrics",
        [],
        sa.Column("cpu_usage", sa.Float(), nullable=True, comment="percent"),
        sa.Column("cpu_count", sa.Integer(), nullable=True),
        sa.Column("cpu_iowait", sa.Float(), nullable=True),
        sa.Column("memory_usage", sa.Float(), nullable=True, comment="percent"),
        sa.Column("memory_total_bytes", sa.BigInteger(), nullable=True),
        sa.Column("memory_used_bytes", sa.BigInteger(), nullable=True),
        sa.Column("memory_available_bytes", sa.BigInteger(), nullable=True),
        sa.Column("swap_total_bytes", sa.BigInteger(), nullable=True),
        sa.Column("swap_used_bytes", sa.BigInteger(), nullable=True),
        sa.Column("load_1", sa.Float(), nullable=True),
        sa.Column("load_5", sa.Float(), nullable=True),
        sa.Column("load_15", sa.Float(), nullable=True),
        sa.Column("uptime_seconds", sa.Float(), nullable=True),
        sa.Column("disk_usage", JSONB, nullable=True),
        sa.Column("disk_io", JSONB, nullable=True),
        sa.Column("network_traffic", JSONB, nullable=True),
    )

    ddl.series_table(
        "container_snapshots",
        [sa.Column("container_id", sa.String(length=255), nullable=False)],
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("image", sa.String(length=512), nullable=True),
        sa.Column("status", sa.String(length=255), nullable=True),
        sa.Column("state", sa.String(length=50), nullable=True),
        sa.Column("health", sa.String(length=50), nullable=True),
        sa.Column("restart_count", sa.Integer(), nullable=True),
        sa.Column("cpu_usage", sa.Float(), nullable=True),
        sa.Column("memory_usage_bytes", sa.BigInteger(), nullable=True),
        sa.Column("memory_limit_bytes", sa.BigInteger(), nullable=True),
        sa.Column("ports", JSONB, nullable=True),
        sa.Column("network_io", JSONB, nullable=True),
        sa.Column("block_io", JSONB, nullable=True),
        sa.Column("created", TZ, nullable=True),
        sa.Column("removed", sa.Boolean(), nullable=False),
    )

    ddl.series_table(
        "drive_health",
        [sa.Column("drive_name", sa.String(length=255), nullable=False)],
        sa.Column("model", sa.String(length=255), nullable=True),
        sa.Column("serial_number", sa.String(length=255), nullable=True),
        sa.Column("firmware", sa.String(length=64), nullable=True),
        sa.Column("capacity_bytes", sa.BigInteger(), nullable=True),
        sa.Column("smart_attributes", JSONB, nullable=True),
        sa.Column("temperature_celsius", sa.Integer(), nullable=True),
        sa.Column("power_on_hours", sa.Integer(), nullable=True),
        sa.Column("is_healthy", sa.Boolean(), nullable=True),
        sa.Column("smartctl_exit_status", sa.Integer(), nullable=True),
    )

    ddl.event_table(
        "data_collection_audit",
        sa.Column("device_id", UUID, nullable=True),
        sa.Column("operation_id", UUID, nullable=False),
        sa.Column("data_type", sa.String(length=50), nullable=False),
        sa.Column("collection_method", sa.String(length=50), nullable=False),
        sa.Column("collection_source", sa.String(length=100), nullable=True, comment="service/instance"),
        sa.Column("trigger", sa.String(length=20), nullable=False),
        sa.Column("force_refresh", sa.Boolean(), nullable=False),
        sa.Column("cache_hit", sa.Boolean(), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.Column("ssh_command_count", sa.Integer(), nullable=False),
        sa.Column("data_size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("warnings", JSONB, nullable=True),
        sa.Column("records_created", sa.Integer(), nullable=False),
        sa.Column("records_updated", sa.Integer(), nullable=False),
        sa.Column("freshness_threshold", sa.Integer(), nullable=True),
    )
    ddl.device_time_index("data_collection_audit", "ix_audit_device_time")
    op.create_index("ix_audit_operation", "data_collection_audit", ["operation_id"])

    op.create_table(
        "configuration_snapshots",
        sa.Column("id", UUID, nullable=False),
        sa.Column("time", TZ, nullable=False),
        sa.Column("device_id", UUID, nullable=False),
        sa.Column("event_id", UUID, nullable=False),
        sa.Column("config_type", sa.String(length=50), nullable=False),
        sa.Column("file_path", sa.String(length=4096), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("file_size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("raw_content", sa.Text(), nullable=True),
        sa.Column("content_truncated", sa.Boolean(), nullable=False),
        sa.Column("parsed_data", JSONB, nullable=True),
        sa.Column("change_type", sa.String(length=20), nullable=False),
        sa.Column("previous_hash", sa.String(length=64), nullable=True),
        sa.Column("file_modified_time", TZ, nullable=True),
        sa.Column("collection_source", sa.String(length=50), nullable=False),
        sa.Column("detection_latency_ms", sa.Integer(), nullable=True),
        sa.Column("affected_services", JSONB, nullable=True),
        sa.Column("requires_restart", sa.Boolean(), nullable=False),
        sa.Column("risk_level", sa.String(length=20), nullable=False),
        sa.PrimaryKeyConstraint("id", "time", name=op.f("pk_configuration_snapshots")),
    )
    op.create_index("ix_config_snapshots_device_path_time", "configuration_snapshots",
                    ["device_id", "file_path", sa.text("time DESC")])

    op.create_table(
        "configuration_change_events",
        sa.Column("id", UUID, nullable=False),
        sa.Column("time", TZ, nullable=False),
        sa.Column("device_id", UUID, nullable=False),
        sa.Column("snapshot_id", UUID, nullable=False),
        sa.Column("config_type", sa.String(length=50), nullable=False),
        sa.Column("file_path", sa.String(length=4096), nullable=False),
        sa.Column("change_type", sa.String(length=20), nullable=False),
        sa.Column("old_path", sa.String(length=4096), nullable=True),
        sa.Column("affected_services", JSONB, nullable=True),
        sa.Column("service_dependencies", JSONB, nullable=True),
        sa.Column("requires_restart", sa.Boolean(), nullable=False),
        sa.Column("restart_services", JSONB, nullable=True),
        sa.Column("changes_summary", JSONB, nullable=True),
        sa.Column("risk_level", sa.String(length=20), nullable=False),
        sa.Column("confidence_score", sa.Numeric(precision=3, scale=2), nullable=True),
        sa.Column("processed", sa.Boolean(), nullable=False),
        sa.Column("notifications_sent", JSONB, nullable=True),
        sa.PrimaryKeyConstraint("id", "time", name=op.f("pk_configuration_change_events")),
    )
    ddl.device_time_index("configuration_change_events", "ix_config_changes_device_time")
    op.create_index("ix_config_changes_snapshot", "configuration_change_events", ["snapshot_id"])

    op.create_table(
        "service_performance_metrics",
        sa.Column("time", TZ, nullable=False),
        sa.Column("service_name", sa.String(length=50), nullable=False),
        sa.Column("instance", sa.String(length=255), nullable=False),
        sa.Column("operations_total", sa.Integer(), nullable=False),
        sa.Column("operations_successful", sa.Integer(), nullable=False),
        sa.Column("operations_failed", sa.Integer(), nullable=False),
        sa.Column("operations_cached", sa.Integer(), nullable=False),
        sa.Column("avg_duration_ms", sa.Numeric(precision=10, scale=2), nullable=True),
        sa.Column("max_duration_ms", sa.Integer(), nullable=True),
        sa.Column("min_duration_ms", sa.Integer(), nullable=True),
        sa.Column("ssh_connections_created", sa.Integer(), nullable=False),
        sa.Column("ssh_connections_reused", sa.Integer(), nullable=False),
        sa.Column("ssh_commands_executed", sa.Integer(), nullable=False),
        sa.Column("cache_hit_ratio", sa.Numeric(precision=5, scale=2), nullable=True),
        sa.Column("cache_size_entries", sa.Integer(), nullable=True),
        sa.Column("cache_evictions", sa.Integer(), nullable=False),
        sa.Column("data_collected_bytes", sa.BigInteger(), nullable=False),
        sa.Column("database_writes", sa.Integer(), nullable=False),
        sa.Column("error_types", JSONB, nullable=True),
        sa.Column("top_errors", JSONB, nullable=True),
        sa.PrimaryKeyConstraint("time", "service_name", "instance", name=op.f("pk_service_performance_metrics")),
    )

    op.create_table(
        "api_keys",
        sa.Column("id", UUID, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False, comment="visible part of the key"),
        sa.Column("key_hash", sa.String(length=64), nullable=False, comment="sha256 of the whole key"),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("created_at", TZ, server_default=sa.text("now()"), nullable=False),
        sa.Column("last_used_at", TZ, nullable=True),
        sa.Column("expires_at", TZ, nullable=True),
        sa.Column("revoked_at", TZ, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("prefix", name=op.f("uq_api_keys_prefix")),
    )

    timescaledb = ddl.timescaledb_available()
    if timescaledb:
        days = ddl.metrics_retention_days()
        ddl.hypertables(TIME_SERIES_TABLES, {**RETENTION_DAYS, **dict.fromkeys(METRICS_TABLES, days)}, SEGMENT_BY)
    else:
        log.warning(
            "TimescaleDB is absent: skipping hypertables, compression, retention policies and the "
            "continuous aggregate %s (a plain view is created instead); the tables work as plain "
            "PostgreSQL tables", HOURLY_VIEW)
    ddl.hourly_view(HOURLY_VIEW, _HOURLY_COLUMNS, continuous=timescaledb)


def downgrade() -> None:
    if ddl.is_continuous_aggregate(HOURLY_VIEW):
        op.execute(f"DROP MATERIALIZED VIEW {HOURLY_VIEW}")  # also removes its refresh policy
    else:
        op.execute(f"DROP VIEW IF EXISTS {HOURLY_VIEW}")
    op.drop_table("api_keys")
    ddl.drop_tables(TIME_SERIES_TABLES)
    op.drop_index("uq_devices_live_name", table_name="devices")
    op.drop_table("devices")
    # The timescaledb extension itself stays: it may predate this schema or serve others.
