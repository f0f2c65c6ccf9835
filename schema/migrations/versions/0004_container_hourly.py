"""Container CPU and memory per hour: a continuous aggregate with TimescaleDB, a plain view otherwise.

Revision ID: 0004
Revises: 0003
Create Date: 2025-01-04 00:00:00
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from alembic import op

from schema.migrations import ddl

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("schema.migrations")

VIEW = "container_snapshots_hourly"
COLUMNS = (
    " device_id, container_id, avg(cpu_usage) AS avg_cpu_usage, max(cpu_usage) AS max_cpu_usage,"
    " avg(memory_usage_bytes)::bigint AS avg_memory_usage_bytes, max(memory_usage_bytes) AS max_memory_usage_bytes,"
    " count(*) AS sample_count FROM container_snapshots GROUP BY bucket, device_id, container_id"
)


def upgrade() -> None:
    continuous = ddl.timescaledb_installed()
    if not continuous:
        log.info("%s is a plain view (no TimescaleDB)", VIEW)
    ddl.hourly_view(VIEW, COLUMNS, continuous)


def downgrade() -> None:
    if ddl.is_continuous_aggregate(VIEW):
        with op.get_context().autocommit_block():
            op.execute(f"DROP MATERIALIZED VIEW IF EXISTS {VIEW}")
    else:
        op.execute(f"DROP VIEW IF EXISTS {VIEW}")
