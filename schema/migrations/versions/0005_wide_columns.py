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

from schema.migrations import ddl

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# table -> {column: type before this revision}; each becomes BIGINT (integers), TEXT (varchars)
# or NUMERIC (capped numerics).
NARROW: dict[str, dict[str, str]] = {
    "devices": {"address": "VARCHAR(255)", "port": "INTEGER", "username": "VARCHAR(64)",
                "transport": "VARCHAR(16)", "device_type": "VARCHAR(50)"},
    "system_metrics": {"cpu_count": "INTEGER"},
    "container_snapshots": {"container_id": "VARCHAR(255)", "name": "VARCHAR(255)", "image": "VARCHAR(512)",
                            "status": "VARCHAR(255)", "state": "VARCHAR(50)", "health": "VARCHAR(50)",
                            "restart_count": "INTEGER"},
    "drive_health": {"drive_name": "VARCHAR(255)", "model": "VARCHAR(255)", "serial_number": "VARCHAR(255)",
                     "firmware": "VARCHAR(64)", "temperature_celsius": "INTEGER", "power_on_hours": "INTEGER",
                     "smartctl_exit_status": "INTEGER"},
    "data_collection_audit": {"data_type": "VARCHAR(50)", "collection_method": "VARCHAR(50)",
                              "collection_source": "VARCHAR(100)", "trigger": "VARCHAR(20)",
                              "duration_ms": "INTEGER", "ssh_command_count": "INTEGER", "status": "VARCHAR(20)",
                              "records_created": "INTEGER", "records_updated": "INTEGER",
                              "freshness_threshold": "INTEGER"},
    "configuration_snapshots": {"config_type": "VARCHAR(50)", "file_path": "VARCHAR(4096)",
                                "content_hash": "VARCHAR(64)", "change_type": "VARCHAR(20)",
                                "previous_hash": "VARCHAR(64)", "collection_source": "VARCHAR(50)",
                                "detection_latency_ms": "INTEGER", "risk_level": "VARCHAR(20)"},
    "configuration_change_events": {"config_type": "VARCHAR(50)", "file_path": "VARCHAR(4096)",
                                    "change_type": "VARCHAR(20)", "old_path": "VARCHAR(4096)",
                                    "risk_level": "VARCHAR(20)", "confidence_score": "NUMERIC(3, 2)"},
    "service_performance_metrics": {"service_name": "VARCHAR(50)", "instance": "VARCHAR(255)",
                                    "operations_total": "INTEGER", "operations_successful": "INTEGER",
                                    "operations_failed": "INTEGER", "operations_cached": "INTEGER",
                                    "avg_duration_ms": "NUMERIC(10, 2)", "max_duration_ms": "INTEGER",
                                    "min_duration_ms": "INTEGER", "ssh_connections_created": "INTEGER",
                                    "ssh_connections_reused": "INTEGER", "ssh_commands_executed": "INTEGER",
                                    "cache_size_entries": "INTEGER", "cache_hit_ratio": "NUMERIC(5, 2)",
                                    "cache_evictions": "INTEGER", "database_writes": "INTEGER"},
    "alert_events": {"rule_name": "VARCHAR(63)", "metric": "VARCHAR(32)", "state": "VARCHAR(16)",
                     "operator": "VARCHAR(2)"},
    "alert_notifications": {"format": "VARCHAR(16)", "attempts": "INTEGER", "status": "VARCHAR(16)",
                            "http_status": "INTEGER"},
    "network_interfaces": {"interface": "VARCHAR(64)", "state": "VARCHAR(32)", "mtu": "INTEGER",
                           "mac": "VARCHAR(64)", "link_type": "VARCHAR(32)", "kind": "VARCHAR(32)",
                           "master": "VARCHAR(64)"},
    "zfs_pools": {"pool": "VARCHAR(255)", "health": "VARCHAR(20)", "fragmentation_percent": "INTEGER",
                  "capacity_percent": "INTEGER", "scrub_state": "VARCHAR(20)", "last_scrub_end": "VARCHAR(32)",
                  "scrub_errors": "INTEGER"},
    "systemd_snapshots": {"units_total": "INTEGER", "units_active": "INTEGER", "units_failed": "INTEGER"},
    "inventory_snapshots": {"hostname": "VARCHAR(255)", "os_name": "VARCHAR(255)", "os_version": "VARCHAR(64)",
                            "kernel": "VARCHAR(255)", "architecture": "VARCHAR(32)", "cpu_model": "VARCHAR(255)",
                            "cpu_count": "INTEGER", "package_manager": "VARCHAR(16)"},
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
