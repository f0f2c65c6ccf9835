"""configuration_snapshots and configuration_change_events: one row each per ConfigChanged.

Row ids are derived from the event id (uuid5), so a redelivered event makes no second row.
What has no column of its own goes into the JSONB columns: ``parsed_data`` holds the parsed
data with the parse error, redactions and file metadata; ``changes_summary`` holds the
structured and unified diffs, the risk rule, the actions and the watch mode. A DELETE's
snapshot has an empty ``content_hash`` (there is no content) and the deleted version in
``previous_hash``.
"""

from __future__ import annotations

import uuid

from services.writer.projection import ProjectionError, Rows, j, projector, table
from shared.config_events import ConfigChanged

ROW_NS = uuid.UUID("0f7e4d52-8b1a-4c3e-9d6f-2a5b7c9e1d40")

table("configuration_snapshots", (
    "id", "time", "device_id", "event_id", "config_type", "file_path", "content_hash", "file_size_bytes",
    "raw_content", "content_truncated", "parsed_data", "change_type", "previous_hash", "file_modified_time",
    "collection_source", "detection_latency_ms", "affected_services", "requires_restart", "risk_level",
))
table("configuration_change_events", (
    "id", "time", "device_id", "snapshot_id", "config_type", "file_path", "change_type", "old_path",
    "affected_services", "service_dependencies", "requires_restart", "restart_services", "changes_summary",
    "risk_level", "confidence_score", "processed", "notifications_sent",
))


def row_ids(event_id: uuid.UUID) -> tuple[uuid.UUID, uuid.UUID]:
    """(snapshot id, change event id) of one event."""
    return uuid.uuid5(ROW_NS, f"snapshot:{event_id}"), uuid.uuid5(ROW_NS, f"change:{event_id}")


@projector(ConfigChanged)
def config_changed(ev: ConfigChanged, seq: int) -> Rows:
    if ev.device_id is None:
        raise ProjectionError("config event without device_id")
    snapshot_id, change_id = row_ids(ev.event_id)
    imp = ev.impact
    parsed_data = {
        "data": ev.parsed,
        "parse_error": ev.parse_error,
        "redactions": ev.redactions,
        "owner": ev.owner,
        "mode": ev.mode,
        "binary": ev.binary,
        "content_limit": ev.content_limit,
    }
    summary = {
        "added": imp.summary.added if imp else [],
        "removed": imp.summary.removed if imp else [],
        "changed": imp.summary.changed if imp else [],
        "metadata": imp.summary.metadata if imp else [],
        "unified_diff": imp.unified_diff if imp else None,
        "unified_diff_truncated": imp.unified_diff_truncated if imp else False,
        "risk_rule": imp.risk_rule if imp else None,
        "requires_reload": imp.requires_reload if imp else False,
        "reload_services": imp.reload_services if imp else [],
        "actions": imp.actions if imp else [],
        "watch_mode": ev.watch_mode,
        "trigger": ev.trigger,
        "event_id": str(ev.event_id),
        "sha256": ev.sha256,
        "previous_sha256": ev.previous_sha256,
    }
    risk = imp.risk_level if imp else "MEDIUM"
    affected = imp.affected_services if imp else []
    restart = imp.requires_restart if imp else False
    latency = None if ev.detection_latency_ms is None else round(ev.detection_latency_ms)
    return {
        "configuration_snapshots": [(
            snapshot_id, ev.occurred_at, ev.device_id, ev.event_id, ev.config_type, ev.path, ev.sha256 or "",
            ev.size, ev.content, ev.content_truncated, j(parsed_data), ev.change_type, ev.previous_sha256,
            ev.mtime, f"{ev.trigger}:{ev.watch_mode}", latency, j(affected), restart, risk,
        )],
        "configuration_change_events": [(
            change_id, ev.occurred_at, ev.device_id, snapshot_id, ev.config_type, ev.path, ev.change_type,
            ev.old_path, j(affected), j(imp.dependencies if imp else []), restart,
            j(imp.restart_services if imp else []), j(summary), risk, imp.confidence if imp else None, False, None,
        )],
    }
