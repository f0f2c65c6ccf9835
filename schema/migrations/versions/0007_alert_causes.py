"""The likely causes of a fired alert: ``alert_events.causes`` (JSONB, null on a resolved alert), and
the rule's look-back window and count of them: ``alert_rules.cause_window_s`` and ``cause_top``.

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
RULES = "alert_rules"


def upgrade() -> None:
    for column in ddl.columns("causes:jsonb?  # likely causes, likeliest first (fired alerts only)"):
        op.add_column(TABLE, column)
    for column in ddl.columns("cause_window_s:bigint=1800  # look-back window of the likely causes, seconds\n"
                              "cause_top:bigint=5  # how many likely causes a fired alert carries"):
        op.add_column(RULES, column)


def downgrade() -> None:
    op.drop_column(RULES, "cause_top")
    op.drop_column(RULES, "cause_window_s")
    op.drop_column(TABLE, "causes")
