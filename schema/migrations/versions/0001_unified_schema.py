"""Unified schema: devices, time-series tables, API keys; TimescaleDB features when available.

Revision ID: 0001
Revises:
Create Date: 2025-01-01 00:00:00
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import postgresql

from schema.models import TIME_SERIES_TABLES
from shared.settings import Settings

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("schema.migrations")

UUID = postgresql.UUID(as_uuid=True)
JSONB = postgresql.JSONB()
TZ = sa.DateTime(timezone=True)

HOURLY_VIEW = "system_metrics_hourly"
SEGMENT_BY = {"service_performance_metrics": "service_name"}  # default: device_id
COMPRESS_AFTER = "7 days"
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

    op.create_table(
        "system_metrics",
        sa.Column("time", TZ, nullable=False),
        sa.Column("device_id", UUID, nullable=False),
        sa.Column("event_id", UUID, nullable=False),
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
        sa.PrimaryKeyConstraint("time", "device_id", name=op.f("pk_system_metrics")),
    )
    op.create_index("ix_system_metrics_device_time", "system_metrics", ["device_id", sa.text("time DESC")])

    op.create_table(
        "container_snapshots",
        sa.Column("time", TZ, nullable=False),
        sa.Column("device_id", UUID, nullable=False),
        sa.Column("container_id", sa.String(length=255), nullable=False),
        sa.Column("event_id", UUID, nullable=False),
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
        sa.PrimaryKeyConstraint("time", "device_id", "container_id", name=op.f("pk_container_snapshots")),
    )
    op.create_index("ix_container_snapshots_device_time", "container_snapshots",
                    ["device_id", sa.text("time DESC")])

    op.create_table(
        "drive_health",
        sa.Column("time", TZ, nullable=False),
        sa.Column("device_id", UUID, nullable=False),
        sa.Column("drive_name", sa.String(length=255), nullable=False),
        sa.Column("event_id", UUID, nullable=False),
        sa.Column("model", sa.String(length=255), nullable=True),
        sa.Column("serial_number", sa.String(length=255), nullable=True),
        sa.Column("firmware", sa.String(length=64), nullable=True),
        sa.Column("capacity_bytes", sa.BigInteger(), nullable=True),
        sa.Column("smart_attributes", JSONB, nullable=True),
        sa.Column("temperature_celsius", sa.Integer(), nullable=True),
        sa.Column("power_on_hours", sa.Integer(), nullable=True),
        sa.Column("is_healthy", sa.Boolean(), nullable=True),
        sa.Column("smartctl_exit_status", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("time", "device_id", "drive_name", name=op.f("pk_drive_health")),
    )
    op.create_index("ix_drive_health_device_time", "drive_health", ["device_id", sa.text("time DESC")])

    op.create_table(
        "data_collection_audit",
        sa.Column("time", TZ, nullable=False),
        sa.Column("event_id", UUID, nullable=False),
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
        sa.PrimaryKeyConstraint("time", "event_id", name=op.f("pk_data_collection_audit")),
    )
    op.create_index("ix_audit_device_time", "data_collection_audit", ["device_id", sa.text("time DESC")])
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
    op.create_index("ix_config_changes_device_time", "configuration_change_events",
                    ["device_id", sa.text("time DESC")])
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

    if _timescaledb_available():
        _timescaledb_upgrade()
    else:
        log.warning(
            "TimescaleDB is absent: skipping hypertables, compression, retention policies and the "
            "continuous aggregate %s (a plain view is created instead); the tables work as plain "
            "PostgreSQL tables", HOURLY_VIEW)
        op.execute(f"CREATE VIEW {HOURLY_VIEW} AS SELECT date_trunc('hour', time) AS bucket,{_HOURLY_COLUMNS}")


def downgrade() -> None:
    if _is_continuous_aggregate(HOURLY_VIEW):
        op.execute(f"DROP MATERIALIZED VIEW {HOURLY_VIEW}")  # also removes its refresh policy
    else:
        op.execute(f"DROP VIEW IF EXISTS {HOURLY_VIEW}")
    # Dropping a hypertable removes its chunks and its compression and retention jobs; CASCADE
    # also removes the tables of its compressed chunks, which TimescaleDB otherwise leaves behind.
    op.drop_table("api_keys")
    for table in reversed(TIME_SERIES_TABLES):
        op.execute(f"DROP TABLE {table} CASCADE")
    op.drop_index("uq_devices_live_name", table_name="devices")
    op.drop_table("devices")
    # The timescaledb extension itself stays: it may predate this schema or serve others.


def _timescaledb_available() -> bool:
    if context.is_offline_mode():
        log.warning("offline mode cannot detect TimescaleDB: rendering the plain PostgreSQL schema")
        return False
    query = sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")
    return op.get_bind().execute(query).scalar() is not None


def _is_continuous_aggregate(name: str) -> bool:
    if context.is_offline_mode():
        return False
    bind = op.get_bind()
    if bind.execute(sa.text("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")).scalar() is None:
        return False
    query = sa.text(
        "SELECT 1 FROM timescaledb_information.continuous_aggregates "
        "WHERE view_schema = current_schema() AND view_name = :name")
    return bind.execute(query, {"name": name}).scalar() is not None


def _timescaledb_upgrade() -> None:
    metrics_days = Settings().metrics_retention_days
    retention = {**RETENTION_DAYS, **dict.fromkeys(METRICS_TABLES, metrics_days)}
    op.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    for table in TIME_SERIES_TABLES:
        op.execute(f"SELECT create_hypertable('{table}', 'time', migrate_data => true, if_not_exists => true)")
        op.execute(
            f"ALTER TABLE {table} SET (timescaledb.compress, "
            f"timescaledb.compress_segmentby = '{SEGMENT_BY.get(table, 'device_id')}', "
            "timescaledb.compress_orderby = 'time DESC')")
        op.execute(f"SELECT add_compression_policy('{table}', INTERVAL '{COMPRESS_AFTER}', if_not_exists => true)")
        days = retention[table]
        if days is not None and days > 0:  # 0 or less keeps the rows forever
            op.execute(f"SELECT add_retention_policy('{table}', INTERVAL '{int(days)} days', if_not_exists => true)")
    # A continuous aggregate cannot be created inside a transaction block.
    with op.get_context().autocommit_block():
        op.execute(
            f"CREATE MATERIALIZED VIEW {HOURLY_VIEW} "
            "WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS "
            f"SELECT time_bucket(INTERVAL '1 hour', time) AS bucket,{_HOURLY_COLUMNS} WITH NO DATA")
    # Refresh no further back than the raw rows are kept, or the refresh would empty old buckets.
    start_days = min(3, metrics_days) if metrics_days > 0 else 3
    op.execute(
        f"SELECT add_continuous_aggregate_policy('{HOURLY_VIEW}', "
        f"start_offset => INTERVAL '{start_days} days', end_offset => INTERVAL '1 hour', "
        "schedule_interval => INTERVAL '1 hour', if_not_exists => true)")
