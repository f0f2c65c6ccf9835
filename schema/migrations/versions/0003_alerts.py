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

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("schema.migrations")

ALERT_TIME_SERIES_TABLES = ("alert_events", "alert_notifications")


def upgrade() -> None:
    op.create_table(
        "alert_rules",
        *ddl.columns("""
            id:uuid
            name:varchar(63)  # a subject token
            device_id:uuid?  # NULL: every device
            metric:varchar(32)
            selector:varchar(255)?  # mount, drive, container, unit, pool… glob
            operator:varchar(2) threshold:float duration_s:int refire_interval_s:int enabled:bool
            webhook_url:text? webhook_format:varchar(16) created_at:tz=now() updated_at:tz=now()
        """),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_rules")),
        sa.UniqueConstraint("name", name=op.f("uq_alert_rules_name")),
    )
    ddl.event_table("alert_events", *ddl.columns("""
        rule_id:uuid rule_name:varchar(63) device_id:uuid metric:varchar(32)
        state:varchar(16)  # fired or resolved
        value:float threshold:float operator:varchar(2) since:tz refire:bool detail:text? message:text?
    """))
    ddl.device_time_index("alert_events")
    op.create_index("ix_alert_events_rule_time", "alert_events", ["rule_id", sa.text("time DESC")])
    ddl.event_table("alert_notifications", *ddl.columns("""
        alert_event_id:uuid rule_id:uuid device_id:uuid
        url:text  # scheme, host and port only
        format:varchar(16) attempts:int
        status:varchar(16)  # delivered or failed
        http_status:int? last_error:text?
    """))
    op.create_index("ix_alert_notifications_alert", "alert_notifications", ["alert_event_id"])

    if ddl.timescaledb_available():
        ddl.hypertables(ALERT_TIME_SERIES_TABLES)
    else:
        log.info("alert_events and alert_notifications are plain tables (no TimescaleDB)")


def downgrade() -> None:
    ddl.drop_tables(ALERT_TIME_SERIES_TABLES)
    op.drop_table("alert_rules")
