"""Tables of the collector's data types: network interfaces, ZFS pools, systemd snapshots,
inventory snapshots; hypertables, compression and retention when TimescaleDB is present.

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02 00:00:00
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from shared.settings import Settings

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("schema.migrations")


def _load_0001():
    """Revision 0001, for its TimescaleDB helpers (a file name is not an importable module name)."""
    path = Path(__file__).with_name("0001_unified_schema.py")
    spec = importlib.util.spec_from_file_location("schema_migration_0001", path)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


UUID = postgresql.UUID(as_uuid=True)
JSONB = postgresql.JSONB()
TZ = sa.DateTime(timezone=True)

TABLES = ("network_interfaces", "zfs_pools", "systemd_snapshots", "inventory_snapshots")
# None: kept forever (inventory is the drift history); the others follow INFRAWATCH_METRICS_RETENTION_DAYS.
FOREVER = ("inventory_snapshots",)


def upgrade() -> None:
    op.create_table(
        "network_interfaces",
        sa.Column("time", TZ, nullable=False),
        sa.Column("device_id", UUID, nullable=False),
        sa.Column("interface", sa.String(length=64), nullable=False),
        sa.Column("event_id", UUID, nullable=False),
        sa.Column("state", sa.String(length=32), nullable=True),
        sa.Column("mtu", sa.Integer(), nullable=True),
        sa.Column("mac", sa.String(length=64), nullable=True),
        sa.Column("link_type", sa.String(length=32), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=True),
        sa.Column("master", sa.String(length=64), nullable=True),
        sa.Column("addresses", JSONB, nullable=True),
        *(sa.Column(f"{d}_{c}", sa.BigInteger(), nullable=True)
          for d in ("rx", "tx") for c in ("bytes", "packets", "errors", "dropped")),
        sa.PrimaryKeyConstraint("time", "device_id", "interface", name=op.f("pk_network_interfaces")),
    )
    op.create_index("ix_network_interfaces_device_time", "network_interfaces", ["device_id", sa.text("time DESC")])

    op.create_table(
        "zfs_pools",
        sa.Column("time", TZ, nullable=False),
        sa.Column("device_id", UUID, nullable=False),
        sa.Column("pool", sa.String(length=255), nullable=False),
        sa.Column("event_id", UUID, nullable=False),
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
        sa.PrimaryKeyConstraint("time", "device_id", "pool", name=op.f("pk_zfs_pools")),
    )
    op.create_index("ix_zfs_pools_device_time", "zfs_pools", ["device_id", sa.text("time DESC")])

    op.create_table(
        "systemd_snapshots",
        sa.Column("time", TZ, nullable=False),
        sa.Column("device_id", UUID, nullable=False),
        sa.Column("event_id", UUID, nullable=False),
        sa.Column("units_total", sa.Integer(), nullable=False),
        sa.Column("units_active", sa.Integer(), nullable=False),
        sa.Column("units_failed", sa.Integer(), nullable=False),
        sa.Column("failed_units", JSONB, nullable=True),
        sa.Column("restarted_units", JSONB, nullable=True),
        sa.Column("units", JSONB, nullable=True),
        sa.PrimaryKeyConstraint("time", "device_id", name=op.f("pk_systemd_snapshots")),
    )
    op.create_index("ix_systemd_snapshots_device_time", "systemd_snapshots", ["device_id", sa.text("time DESC")])

    op.create_table(
        "inventory_snapshots",
        sa.Column("time", TZ, nullable=False),
        sa.Column("device_id", UUID, nullable=False),
        sa.Column("event_id", UUID, nullable=False),
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
        sa.PrimaryKeyConstraint("time", "device_id", name=op.f("pk_inventory_snapshots")),
    )
    op.create_index("ix_inventory_snapshots_device_time", "inventory_snapshots", ["device_id", sa.text("time DESC")])

    base = _load_0001()
    if base._timescaledb_available():
        _timescaledb_upgrade(base)
    else:
        log.warning("without TimescaleDB, %s are plain PostgreSQL tables (no hypertables, compression "
                    "or retention)", ", ".join(TABLES))


def _timescaledb_upgrade(base) -> None:
    days = Settings().metrics_retention_days
    op.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    for table in TABLES:
        op.execute(f"SELECT create_hypertable('{table}', 'time', migrate_data => true, if_not_exists => true)")
        op.execute(
            f"ALTER TABLE {table} SET (timescaledb.compress, timescaledb.compress_segmentby = 'device_id', "
            "timescaledb.compress_orderby = 'time DESC')")
        op.execute(f"SELECT add_compression_policy('{table}', INTERVAL '{base.COMPRESS_AFTER}', if_not_exists => true)")
        if table not in FOREVER and days > 0:
            op.execute(f"SELECT add_retention_policy('{table}', INTERVAL '{int(days)} days', if_not_exists => true)")


def downgrade() -> None:
    # Dropping a hypertable removes its chunks and its compression and retention jobs (CASCADE:
    # and the tables of its compressed chunks).
    for table in reversed(TABLES):
        op.execute(f"DROP TABLE {table} CASCADE")
