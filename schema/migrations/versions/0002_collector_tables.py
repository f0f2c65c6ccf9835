"""Tables of the collector's data types: network interfaces, ZFS pools, systemd snapshots,
inventory snapshots; hypertables, compression and retention when TimescaleDB is present.

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02 00:00:00
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import sqlalchemy as sa

from schema.migrations import ddl
from schema.migrations.ddl import JSONB

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("schema.migrations")

TABLES = ("network_interfaces", "zfs_pools", "systemd_snapshots", "inventory_snapshots")
# None: kept forever (inventory is the drift history); the others follow INFRAWATCH_METRICS_RETENTION_DAYS.
FOREVER = ("inventory_snapshots",)


def upgrade() -> None:
    ddl.series_table(
        "network_interfaces",
        [sa.Column("interface", sa.String(length=64), nullable=False)],
        sa.Column("state", sa.String(length=32), nullable=True),
        sa.Column("mtu", sa.Integer(), nullable=True),
        sa.Column("mac", sa.String(length=64), nullable=True),
        sa.Column("link_type", sa.String(length=32), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=True),
        sa.Column("master", sa.String(length=64), nullable=True),
        sa.Column("addresses", JSONB, nullable=True),
        *(sa.Column(f"{d}_{c}", sa.BigInteger(), nullable=True)
          for d in ("rx", "tx") for c in ("bytes", "packets", "errors", "dropped")),
    )

    ddl.series_table(
        "zfs_pools",
        [sa.Column("pool", sa.String(length=255), nullable=False)],
        sa.Column("health", sa.String(length=20), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("allocated_bytes", sa.BigInteger(), nullable=True),
        sa.Column("free_bytes", sa.BigInteger(), nullable=True),
        sa.Column("fragmentation_percent", sa.Integer(), nullable=True),
        sa.Column("capacity_percent", sa.Integer(), nullable=True),
        sa.Column("read_errors", sa.BigInteger(), nullable=False),
        sa.Column("write_errors", sa.BigInteger(), nullable=False),
        sa.Column("checksum_errors", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.Text(), nullable=True),
        sa.Column("scrub_state", sa.String(length=20), nullable=True),
        sa.Column("last_scrub_end", sa.String(length=32), nullable=True, comment="host local time, ISO 8601"),
        sa.Column("scrub_errors", sa.Integer(), nullable=True),
        sa.Column("errors", sa.Text(), nullable=True),
        sa.Column("vdevs", JSONB, nullable=True),
        sa.Column("datasets", JSONB, nullable=True),
    )

    ddl.series_table(
        "systemd_snapshots",
        [],
        sa.Column("units_total", sa.Integer(), nullable=False),
        sa.Column("units_active", sa.Integer(), nullable=False),
        sa.Column("units_failed", sa.Integer(), nullable=False),
        sa.Column("failed_units", JSONB, nullable=True),
        sa.Column("restarted_units", JSONB, nullable=True),
        sa.Column("units", JSONB, nullable=True),
    )

    ddl.series_table(
        "inventory_snapshots",
        [],
        sa.Column("hostname", sa.String(length=255), nullable=True),
        sa.Column("os_name", sa.String(length=255), nullable=True),
        sa.Column("os_version", sa.String(length=64), nullable=True),
        sa.Column("kernel", sa.String(length=255), nullable=True),
        sa.Column("architecture", sa.String(length=32), nullable=True),
        sa.Column("cpu_model", sa.String(length=255), nullable=True),
        sa.Column("cpu_count", sa.Integer(), nullable=True),
        sa.Column("memory_total_bytes", sa.BigInteger(), nullable=True),
        sa.Column("package_manager", sa.String(length=16), nullable=True),
        sa.Column("packages", JSONB, nullable=True),
        sa.Column("python_packages", JSONB, nullable=True),
        sa.Column("env_vars", JSONB, nullable=True),
        sa.Column("drift", JSONB, nullable=True),
        sa.Column("has_drift", sa.Boolean(), nullable=False),
    )

    if ddl.timescaledb_available():
        days = ddl.metrics_retention_days()
        ddl.hypertables(TABLES, {table: None if table in FOREVER else days for table in TABLES})
    else:
        log.warning("without TimescaleDB, %s are plain PostgreSQL tables (no hypertables, compression "
                    "or retention)", ", ".join(TABLES))


def downgrade() -> None:
    ddl.drop_tables(TABLES)
