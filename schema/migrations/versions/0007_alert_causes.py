"""The likely causes of a fired alert: ``alert_events.causes`` (JSONB, null on a resolved alert).

A nullable column without a default is added to a compressed hypertable as it is (TimescaleDB
2.x allows it: no chunk is rewritten); dropping it works on compressed chunks too.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from schema.migrations import ddl

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "alert_events"


def upgrade() -> None:
    for column in ddl.columns("causes:jsonb?  # likely causes, likeliest first (fired alerts only)"):
        op.add_column(TABLE, column)


def downgrade() -> None:
    op.drop_column(TABLE, "causes")
