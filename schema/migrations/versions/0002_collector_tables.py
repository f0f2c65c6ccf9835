"""Tables of the collector's data types: network interfaces, ZFS pools, systemd snapshots,
inventory snapshots; hypertables, compression and retention when TimescaleDB is present.

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02 00:00:00
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from schema.migrations import ddl

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("schema.migrations")

TABLES = ("network_interfaces", "zfs_pools", "systemd_snapshots", "inventory_snapshots")
# None: kept forever (inventory is the drift history); the others follow INFRAWATCH_METRICS_RETENTION_DAYS.
FOREVER = ("inventory_snapshots",)


def upgrade() -> None:
    ddl.series_table("network_interfaces", ddl.columns("interface:varchar(64)"), *ddl.columns("""
        state:varchar(32)? mtu:int? mac:varchar(64)? link_type:varchar(32)? kind:varchar(32)?
        master:varchar(64)? addresses:jsonb?
        rx_bytes:bigint? rx_packets:bigint? rx_errors:bigint? rx_dropped:bigint?
        tx_bytes:bigint? tx_packets:bigint? tx_errors:bigint? tx_dropped:bigint?
    """))

    ddl.series_table("zfs_pools", ddl.columns("pool:varchar(255)"), *ddl.columns("""
        health:varchar(20) size_bytes:bigint? allocated_bytes:bigint? free_bytes:bigint?
        fragmentation_percent:int? capacity_percent:int?
        read_errors:bigint write_errors:bigint checksum_errors:bigint
        status:text? scrub_state:varchar(20)?
        last_scrub_end:varchar(32)?  # host local time, ISO 8601
        scrub_errors:int? errors:text? vdevs:jsonb? datasets:jsonb?
    """))

    ddl.series_table("systemd_snapshots", [], *ddl.columns("""
        units_total:int units_active:int units_failed:int
        failed_units:jsonb? restarted_units:jsonb? units:jsonb?
    """))

    ddl.series_table("inventory_snapshots", [], *ddl.columns("""
        hostname:varchar(255)? os_name:varchar(255)? os_version:varchar(64)? kernel:varchar(255)?
        architecture:varchar(32)? cpu_model:varchar(255)? cpu_count:int? memory_total_bytes:bigint?
        package_manager:varchar(16)? packages:jsonb? python_packages:jsonb? env_vars:jsonb? drift:jsonb?
        has_drift:bool
    """))

    if ddl.timescaledb_available():
        days = ddl.metrics_retention_days()
        ddl.hypertables(TABLES, {table: None if table in FOREVER else days for table in TABLES})
    else:
        log.warning("without TimescaleDB, %s are plain PostgreSQL tables (no hypertables, compression "
                    "or retention)", ", ".join(TABLES))


def downgrade() -> None:
    ddl.drop_tables(TABLES)
