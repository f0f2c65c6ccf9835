"""Fleet configuration: ``config_current`` (the latest version of every watched file, with a GIN
index on its parsed data for JSONPath search), ``config_policies`` (policies on parsed configs,
written by the API), ``config_violations`` and ``config_policy_progress`` (the policy evaluator's).

``config_current`` is filled from the stored snapshots, the newest of each file.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from schema.migrations import ddl

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("config_policy_progress", "config_violations", "config_policies", "config_current")


def upgrade() -> None:
    op.create_table(
        "config_current",
        *ddl.columns("device_id:uuid\npath_key:uuid  # md5(file_path)::uuid"),
        *ddl.columns("file_path:text config_type:text time:tz snapshot_id:uuid event_id:uuid change_type:text "
                     "content_hash:text\nparsed:jsonb?  # the config type's parsed data"),
        sa.PrimaryKeyConstraint("device_id", "path_key"),
    )
    op.create_index("ix_config_current_parsed", "config_current", ["parsed"], postgresql_using="gin")
    op.create_index("ix_config_current_type_hash", "config_current", ["config_type", "content_hash"])
    op.execute("""
        INSERT INTO config_current (device_id, path_key, file_path, config_type, time, snapshot_id, event_id,
                                    change_type, content_hash, parsed)
        SELECT DISTINCT ON (device_id, file_path) device_id, md5(file_path)::uuid, file_path, config_type, time, id,
               event_id, change_type, content_hash, parsed_data -> 'data'
        FROM configuration_snapshots ORDER BY device_id, file_path, time DESC, event_id DESC
    """)

    op.create_table(
        "config_policies",
        *ddl.columns("id:uuid\nname:varchar(63)  # a subject token"),
        *ddl.columns("config_type:varchar(50)\njsonpath:text  # a PostgreSQL jsonpath over the parsed data"),
        *ddl.columns("severity:varchar(16) message:text description:text? enabled:bool\n"
                     "device_id:uuid?  # NULL: every device (that has the tags)\n"
                     "tags:jsonb='{}'::jsonb  # every tag must match; {}: any device\n"
                     "builtin:bool webhook_url:text? webhook_format:varchar(16) created_at:tz=now() updated_at:tz=now()"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )

    op.create_table(
        "config_violations",
        *ddl.columns("id:uuid policy_id:uuid policy_name:text severity:text message:text device_id:uuid "
                     "config_type:text file_path:text path_key:uuid"),
        *ddl.columns("state:text  # open or resolved\nmatches:jsonb? match_count:bigint\n"
                     "opened_at:tz  # time of the introducing version"),
        *ddl.columns("introduced_by:jsonb resolved_at:tz? fixed_by:jsonb? resolution:text? fired_event_id:uuid "
                     "resolved_event_id:uuid? published:bool notified:bool updated_at:tz=now()"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("uq_config_violations_open", "config_violations", ["policy_id", "device_id", "path_key"],
                    unique=True, postgresql_where=sa.text("state = 'open'"))
    op.create_index("ix_config_violations_file", "config_violations", ["device_id", "path_key"])
    op.create_index("ix_config_violations_state", "config_violations", ["state", "severity"])
    op.create_index("ix_config_violations_outbox", "config_violations", ["published", "notified"],
                    postgresql_where=sa.text("NOT (published AND notified)"))

    op.create_table(
        "config_policy_progress",
        *ddl.columns("device_id:uuid path_key:uuid time:tz event_id:uuid"),
        sa.PrimaryKeyConstraint("device_id", "path_key"),
    )


def downgrade() -> None:
    for table in TABLES:
        op.drop_table(table)
