"""Container CPU and memory per hour: a continuous aggregate with TimescaleDB, a plain view otherwise.

Revision ID: 0004
Revises: 0003
Create Date: 2025-01-04 00:00:00
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

from shared.settings import Settings

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


def _timescaledb() -> bool:
    if context.is_offline_mode():
        return False
    query = sa.text("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")
    return op.get_bind().execute(query).scalar() is not None


def upgrade() -> None:
    if not _timescaledb():
        log.info("%s is a plain view (no TimescaleDB)", VIEW)
        op.execute(f"CREATE VIEW {VIEW} AS SELECT date_trunc('hour', time) AS bucket,{COLUMNS}")
        return
    with op.get_context().autocommit_block():  # not allowed inside a transaction block
        op.execute(
            f"CREATE MATERIALIZED VIEW {VIEW} "
            "WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS "
            f"SELECT time_bucket(INTERVAL '1 hour', time) AS bucket,{COLUMNS} WITH NO DATA")
    days = Settings().metrics_retention_days
    start_days = min(3, days) if days > 0 else 3
    op.execute(
        f"SELECT add_continuous_aggregate_policy('{VIEW}', start_offset => INTERVAL '{start_days} days', "
        "end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '1 hour', if_not_exists => true)")


def downgrade() -> None:
    if _timescaledb() and op.get_bind().execute(sa.text(
            "SELECT 1 FROM timescaledb_information.continuous_aggregates WHERE view_name = :v"), {"v": VIEW}).scalar():
        with op.get_context().autocommit_block():
            op.execute(f"DROP MATERIALIZED VIEW IF EXISTS {VIEW}")
    else:
        op.execute(f"DROP VIEW IF EXISTS {VIEW}")
