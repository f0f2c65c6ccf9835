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
        *ddl.columns("""
            id:uuid name:varchar(63) address:varchar(255) port:int username:varchar(64)?
            transport:varchar(16) trust_on_first_use:bool device_type:varchar(50)? description:text?
            tags:jsonb='{}'::jsonb enabled:bool created_at:tz=now() updated_at:tz=now() deleted_at:tz?
            stream_seq:bigint  # devices-stream sequence last applied
        """),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_devices")),
    )
    op.create_index("uq_devices_live_name", "devices", ["name"], unique=True,
                    postgresql_where=sa.text("deleted_at IS NULL"))

    ddl.series_table("system_metrics", [], *ddl.columns("""
        cpu_usage:float?  # percent
        cpu_count:int? cpu_iowait:float?
        memory_usage:float?  # percent
        memory_total_bytes:bigint? memory_used_bytes:bigint? memory_available_bytes:bigint?
        swap_total_bytes:bigint? swap_used_bytes:bigint?
        load_1:float? load_5:float? load_15:float? uptime_seconds:float?
        disk_usage:jsonb? disk_io:jsonb? network_traffic:jsonb?
    """))

    ddl.series_table("container_snapshots", ddl.columns("container_id:varchar(255)"), *ddl.columns("""
        name:varchar(255)? image:varchar(512)? status:varchar(255)? state:varchar(50)? health:varchar(50)?
        restart_count:int? cpu_usage:float? memory_usage_bytes:bigint? memory_limit_bytes:bigint?
        ports:jsonb? network_io:jsonb? block_io:jsonb? created:tz? removed:bool
    """))

    ddl.series_table("drive_health", ddl.columns("drive_name:varchar(255)"), *ddl.columns("""
        model:varchar(255)? serial_number:varchar(255)? firmware:varchar(64)? capacity_bytes:bigint?
        smart_attributes:jsonb? temperature_celsius:int? power_on_hours:int? is_healthy:bool?
        smartctl_exit_status:int?
    """))

    ddl.event_table("data_collection_audit", *ddl.columns("""
        device_id:uuid? operation_id:uuid data_type:varchar(50) collection_method:varchar(50)
        collection_source:varchar(100)?  # service/instance
        trigger:varchar(20) force_refresh:bool cache_hit:bool duration_ms:int? ssh_command_count:int
        data_size_bytes:bigint? status:varchar(20) error_message:text? warnings:jsonb?
        records_created:int records_updated:int freshness_threshold:int?
    """))
    ddl.device_time_index("data_collection_audit", "ix_audit_device_time")
    op.create_index("ix_audit_operation", "data_collection_audit", ["operation_id"])

    op.create_table(
        "configuration_snapshots",
        *ddl.columns("""
            id:uuid time:tz device_id:uuid event_id:uuid config_type:varchar(50) file_path:varchar(4096)
            content_hash:varchar(64) file_size_bytes:bigint? raw_content:text? content_truncated:bool
            parsed_data:jsonb? change_type:varchar(20) previous_hash:varchar(64)? file_modified_time:tz?
            collection_source:varchar(50) detection_latency_ms:int? affected_services:jsonb?
            requires_restart:bool risk_level:varchar(20)
        """),
        sa.PrimaryKeyConstraint("id", "time", name=op.f("pk_configuration_snapshots")),
    )
    op.create_index("ix_config_snapshots_device_path_time", "configuration_snapshots",
                    ["device_id", "file_path", sa.text("time DESC")])

    op.create_table(
        "configuration_change_events",
        *ddl.columns("""
            id:uuid time:tz device_id:uuid snapshot_id:uuid config_type:varchar(50) file_path:varchar(4096)
            change_type:varchar(20) old_path:varchar(4096)? affected_services:jsonb?
            service_dependencies:jsonb? requires_restart:bool restart_services:jsonb? changes_summary:jsonb?
            risk_level:varchar(20) confidence_score:numeric(3,2)? processed:bool notifications_sent:jsonb?
        """),
        sa.PrimaryKeyConstraint("id", "time", name=op.f("pk_configuration_change_events")),
    )
    ddl.device_time_index("configuration_change_events", "ix_config_changes_device_time")
    op.create_index("ix_config_changes_snapshot", "configuration_change_events", ["snapshot_id"])

    op.create_table(
        "service_performance_metrics",
        *ddl.columns("""
            time:tz service_name:varchar(50) instance:varchar(255)
            operations_total:int operations_successful:int operations_failed:int operations_cached:int
            avg_duration_ms:numeric(10,2)? max_duration_ms:int? min_duration_ms:int?
            ssh_connections_created:int ssh_connections_reused:int ssh_commands_executed:int
            cache_hit_ratio:numeric(5,2)? cache_size_entries:int? cache_evictions:int
            data_collected_bytes:bigint database_writes:int error_types:jsonb? top_errors:jsonb?
        """),
        sa.PrimaryKeyConstraint("time", "service_name", "instance", name=op.f("pk_service_performance_metrics")),
    )

    op.create_table(
        "api_keys",
        *ddl.columns("""
            id:uuid name:varchar(100)
            prefix:varchar(16)  # visible part of the key
            key_hash:varchar(64)  # sha256 of the whole key
            role:varchar(16) created_at:tz=now() last_used_at:tz? expires_at:tz? revoked_at:tz?
        """),
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
