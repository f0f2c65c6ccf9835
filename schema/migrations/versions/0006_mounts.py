"""The mounts data type: one row per mount per collection; a hypertable with compression and
retention when TimescaleDB is present.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 00:00:00
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from schema.migrations import ddl

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("schema.migrations")

TABLE = "mounts"


def upgrade() -> None:
    ddl.series_table(TABLE, ddl.columns("mount_id:bigint"), *ddl.columns("""
        parent_id:bigint device:text root:text mount_point:text fs_type:text source:text read_only:bool
        options:jsonb? super_options:jsonb? propagation:jsonb?
    """))
    if ddl.timescaledb_available():
        ddl.hypertables((TABLE,), {TABLE: ddl.metrics_retention_days()})
    else:
        log.warning("without TimescaleDB, %s is a plain PostgreSQL table (no hypertable, compression or retention)",
                    TABLE)


def downgrade() -> None:
    ddl.drop_tables((TABLE,))
