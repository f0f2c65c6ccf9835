"""Columns as wide as the event fields they hold: integers become bigint, bounded varchars of
projected tables become text, numerics lose their precision cap.

An int field of an event may hold any 64-bit value (a detection latency of a file from years
ago, a counter, an uptime in ms) and a string field any length; a narrower column made the
database refuse valid events. With TimescaleDB, a hypertable's column type cannot change while
compression is enabled: each such table is decompressed, altered and given the same compression
settings and policy back (chunks are compressed again by the policy). The container hourly
aggregate reads ``container_id`` and is rebuilt around the change. The btree over
``configuration_snapshots.file_path`` refused paths over ~2.7 KB (Linux allows 4 KiB): a hash
index takes its place.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 00:00:00
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from schema.migrations import ddl

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# table -> its columns as they were before this revision (nullability aside); each becomes BIGINT
# (integers), TEXT (varchars) or NUMERIC (capped numerics).
_NARROW_COLUMNS = {
    "devices": """
        address:varchar(255) port:int username:varchar(64) transport:varchar(16) device_type:varchar(50)
    """,
    "system_metrics": "cpu_count:int",
    "container_snapshots": """
        container_id:varchar(255) name:varchar(255) image:varchar(512) status:varchar(255) state:varchar(50)
        health:varchar(50) restart_count:int
    """,
    "drive_health": """
        drive_name:varchar(255) model:varchar(255) serial_number:varchar(255) firmware:varchar(64)
        temperature_celsius:int power_on_hours:int smartctl_exit_status:int
    """,
    "data_collection_audit": """
        data_type:varchar(50) collection_method:varchar(50) collection_source:varchar(100) trigger:varchar(20)
        duration_ms:int ssh_command_count:int status:varchar(20) records_created:int records_updated:int
        freshness_threshold:int
    """,
    "configuration_snapshots": """
        config_type:varchar(50) file_path:varchar(4096) content_hash:varchar(64) change_type:varchar(20)
        previous_hash:varchar(64) collection_source:varchar(50) detection_latency_ms:int
        risk_level:varchar(20)
    """,
    "configuration_change_events": """
        config_type:varchar(50) file_path:varchar(4096) change_type:varchar(20) old_path:varchar(4096)
        risk_level:varchar(20) confidence_score:numeric(3,2)
    """,
    "service_performance_metrics": """
        service_name:varchar(50) instance:varchar(255) operations_total:int operations_successful:int
        operations_failed:int operations_cached:int avg_duration_ms:numeric(10,2) max_duration_ms:int
        min_duration_ms:int ssh_connections_created:int ssh_connections_reused:int ssh_commands_executed:int
        cache_size_entries:int cache_hit_ratio:numeric(5,2) cache_evictions:int database_writes:int
    """,
    "alert_events": "rule_name:varchar(63) metric:varchar(32) state:varchar(16) operator:varchar(2)",
    "alert_notifications": "format:varchar(16) attempts:int status:varchar(16) http_status:int",
    "network_interfaces": """
        interface:varchar(64) state:varchar(32) mtu:int mac:varchar(64) link_type:varchar(32) kind:varchar(32)
        master:varchar(64)
    """,
    "zfs_pools": """
        pool:varchar(255) health:varchar(20) fragmentation_percent:int capacity_percent:int
        scrub_state:varchar(20) last_scrub_end:varchar(32) scrub_errors:int
    """,
    "systemd_snapshots": "units_total:int units_active:int units_failed:int",
    "inventory_snapshots": """
        hostname:varchar(255) os_name:varchar(255) os_version:varchar(64) kernel:varchar(255)
        architecture:varchar(32) cpu_model:varchar(255) cpu_count:int package_manager:varchar(16)
    """,
}
# table -> {column: type before this revision}
NARROW: dict[str, dict[str, str]] = {
    table: {column.name: column.type.compile(dialect=postgresql.dialect()) for column in ddl.columns(spec)}
    for table, spec in _NARROW_COLUMNS.items()
}


def _wide(old: str) -> str:
    return "BIGINT" if old == "INTEGER" else "NUMERIC" if old.startswith("NUMERIC") else "TEXT"


def _load(name: str):
    """Another revision's module, for its helpers (a file name is not an importable module name)."""
    path = Path(__file__).with_name(name)
    spec = importlib.util.spec_from_file_location(f"schema_migration_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def _compression(table: str) -> tuple[str, str] | None:
    """(segmentby, orderby) of a hypertable with compression enabled, else None."""
    if not ddl.timescaledb_installed():
        return None
    if not ddl.scalar("SELECT compression_enabled FROM timescaledb_information.hypertables "
                   "WHERE hypertable_name = :t", t=table):
        return None
    rows = op.get_bind().execute(sa.text(
        "SELECT segmentby, orderby FROM timescaledb_information.hypertable_compression_settings "
        "WHERE hypertable = CAST(:t AS regclass)"), {"t": table}).first()
    return (rows[0] or "", rows[1] or "") if rows else ("device_id", "time DESC")


def _retype(table: str, columns: dict[str, str], to_wide: bool) -> None:
    settings = _compression(table)
    after = None
    if settings is not None:
        after = ddl.scalar("SELECT config->>'compress_after' FROM timescaledb_information.jobs "
                        "WHERE proc_name = 'policy_compression' AND hypertable_name = :t", t=table)
        op.execute(f"SELECT remove_compression_policy('{table}', if_exists => true)")
        op.execute(f"SELECT decompress_chunk(c, true) FROM show_chunks('{table}') c")
        op.execute(f"ALTER TABLE {table} SET (timescaledb.compress = false)")
    changes = ", ".join(f"ALTER COLUMN {col} TYPE {_wide(old) if to_wide else old}" for col, old in columns.items())
    op.execute(f"ALTER TABLE {table} {changes}")
    if settings is not None:
        ddl.enable_compression(table, *settings)
        if after:
            # Not at once: a compression job started when _migrate's autocommit block commits deadlocks
            # with the index changes after it.
            ddl.compression_policy(table, after, initial_start="now() + INTERVAL '1 hour'")


def _migrate(to_wide: bool) -> None:
    hourly = _load("0004_container_hourly.py")
    hourly.downgrade()  # the aggregate reads container_id
    for table, columns in NARROW.items():
        _retype(table, columns, to_wide)
    hourly.upgrade()
    snaps = "configuration_snapshots"
    if to_wide:
        op.drop_index("ix_config_snapshots_device_path_time", table_name=snaps)
        ddl.device_time_index(snaps, "ix_config_snapshots_device_time")
        op.create_index("ix_config_snapshots_path", snaps, ["file_path"], postgresql_using="hash")
    else:
        op.drop_index("ix_config_snapshots_path", table_name=snaps)
        op.drop_index("ix_config_snapshots_device_time", table_name=snaps)
        op.create_index("ix_config_snapshots_device_path_time", snaps, ["device_id", "file_path", sa.text("time DESC")])


def upgrade() -> None:
    _migrate(to_wide=True)


def downgrade() -> None:
    """Back to the narrow types; fails, as it should, when a stored value no longer fits."""
    _migrate(to_wide=False)
