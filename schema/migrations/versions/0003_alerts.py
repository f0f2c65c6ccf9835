"""Alerts: rules, alert events and webhook notification outcomes.

With TimescaleDB, alert_events and alert_notifications are compressed hypertables like the
time-series tables of 0001 (same helpers and compression settings), with no retention policy:
alert history is kept like the alerts stream, forever.

Revision ID: 0003
Revises: 0002
Create Date: 2025-01-03 00:00:00
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from schema.migrations import ddl
from schema.migrations.ddl import TZ, UUID

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("schema.migrations")

ALERT_TIME_SERIES_TABLES = ("alert_events", "alert_notifications")


def upgrade() -> None:
    op.create_table(
        "alert_rules",
        sa.Column("id", UUID, nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False, comment="a subject token"),
        sa.Column("device_id", UUID, nullable=True, comment="NULL: every device"),
        sa.Column("metric", sa.String(length=32), nullable=False),
        sa.Column("selector", sa.String(length=255), nullable=True,
                  comment="mount, drive, container, unit, pool… glob"),
        sa.Column("operator", sa.String(length=2), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("duration_s", sa.Integer(), nullable=False),
        sa.Column("refire_interval_s", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("webhook_url", sa.Text(), nullable=True),
        sa.Column("webhook_format", sa.String(length=16), nullable=False),
        sa.Column("created_at", TZ, server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", TZ, server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_rules")),
        sa.UniqueConstraint("name", name=op.f("uq_alert_rules_name")),
    )
    ddl.event_table(
        "alert_events",
        sa.Column("rule_id", UUID, nullable=False),
        sa.Column("rule_name", sa.String(length=63), nullable=False),
        sa.Column("device_id", UUID, nullable=False),
        sa.Column("metric", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False, comment="fired or resolved"),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("operator", sa.String(length=2), nullable=False),
        sa.Column("since", TZ, nullable=False),
        sa.Column("refire", sa.Boolean(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
    )
    ddl.device_time_index("alert_events")
    op.create_index("ix_alert_events_rule_time", "alert_events", ["rule_id", sa.text("time DESC")])
    ddl.event_table(
        "alert_notifications",
        sa.Column("alert_event_id", UUID, nullable=False),
        sa.Column("rule_id", UUID, nullable=False),
        sa.Column("device_id", UUID, nullable=False),
        sa.Column("url", sa.Text(), nullable=False, comment="scheme, host and port only"),
        sa.Column("format", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False, comment="delivered or failed"),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
    )
    op.create_index("ix_alert_notifications_alert", "alert_notifications", ["alert_event_id"])

    if ddl.timescaledb_available():
        ddl.hypertables(ALERT_TIME_SERIES_TABLES)
    else:
        log.info("alert_events and alert_notifications are plain tables (no TimescaleDB)")


def downgrade() -> None:
    ddl.drop_tables(ALERT_TIME_SERIES_TABLES)
    op.drop_table("alert_rules")
