"""The mounts data type: one row per mount per collection; a hypertable with compression and
retention when TimescaleDB is present.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 00:00:00
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import sqlalchemy as sa

from schema.migrations import ddl
from schema.migrations.ddl import JSONB

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("schema.migrations")

TABLE = "mounts"


def upgrade() -> None:
    ddl.series_table(
        TABLE,
        [sa.Column("mount_id", sa.BigInteger(), nullable=False)],
        sa.Column("parent_id", sa.BigInteger(), nullable=False),
        sa.Column("device", sa.Text(), nullable=False),
        sa.Column("root", sa.Text(), nullable=False),
        sa.Column("mount_point", sa.Text(), nullable=False),
        sa.Column("fs_type", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("read_only", sa.Boolean(), nullable=False),
        sa.Column("options", JSONB, nullable=True),
        sa.Column("super_options", JSONB, nullable=True),
        sa.Column("propagation", JSONB, nullable=True),
    )
    if ddl.timescaledb_available():
        ddl.hypertables((TABLE,), {TABLE: ddl.metrics_retention_days()})
    else:
        log.warning("without TimescaleDB, %s is a plain PostgreSQL table (no hypertable, compression or retention)",
                    TABLE)


def downgrade() -> None:
    ddl.drop_tables((TABLE,))
