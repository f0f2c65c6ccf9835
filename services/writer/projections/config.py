"""configuration_snapshots and configuration_change_events: one row each per ConfigChanged;
config_current: the latest version of each file.

Row ids are derived from the event id (uuid5), so a redelivered event makes no second row.
What has no column of its own goes into the JSONB columns: ``parsed_data`` holds the parsed
data with the parse error, redactions and file metadata; ``changes_summary`` holds the
structured and unified diffs, the risk rule, the actions and the watch mode. A DELETE's
snapshot has an empty ``content_hash`` (there is no content) and the deleted version in
``previous_hash``.

``config_current`` keeps one row per (device, path), replaced only by a later change (by time,
then event id), so an older or redelivered event never overwrites a newer one. A MOVE also marks
its old path DELETE: the watcher emits no DELETE of its own for a moved file.
"""

from __future__ import annotations

import uuid

from schema.models import ConfigCurrent, ConfigurationChangeEvent, ConfigurationSnapshot
from services.writer.registry import ProjectionError, TableRows, projector, table
from shared.config_events import ConfigChanged
from shared.policy_events import path_key

ROW_NS = uuid.UUID("0f7e4d52-8b1a-4c3e-9d6f-2a5b7c9e1d40")

table(ConfigurationSnapshot)
table(ConfigurationChangeEvent)

_CURRENT_SET = ", ".join(f"{c.name} = EXCLUDED.{c.name}" for c in ConfigCurrent.__table__.columns
                         if not c.primary_key)
table(
    ConfigCurrent,
    f"ON CONFLICT (device_id, path_key) DO UPDATE SET {_CURRENT_SET} "
    "WHERE (config_current.time, config_current.event_id) < (EXCLUDED.time, EXCLUDED.event_id)",
    newest=("device_id, path_key", "time DESC, event_id DESC"),
)


def row_ids(event_id: uuid.UUID) -> tuple[uuid.UUID, uuid.UUID]:
    """(snapshot id, change event id) of one event."""
    return uuid.uuid5(ROW_NS, f"snapshot:{event_id}"), uuid.uuid5(ROW_NS, f"change:{event_id}")


@projector(ConfigChanged)
def config_changed(ev: ConfigChanged, seq: int) -> TableRows:
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
    current = [{
        "device_id": ev.device_id, "path_key": path_key(ev.path), "file_path": ev.path,
        "config_type": ev.config_type, "time": ev.occurred_at, "snapshot_id": snapshot_id, "event_id": ev.event_id,
        "change_type": ev.change_type, "content_hash": ev.sha256 or "", "parsed": ev.parsed,
    }]
    if ev.change_type == "MOVE" and ev.old_path and ev.old_path != ev.path:
        current.append({**current[0], "path_key": path_key(ev.old_path), "file_path": ev.old_path,
                        "change_type": "DELETE", "content_hash": "", "parsed": None})
    return {
        "config_current": current,
        "configuration_snapshots": [{
            "id": snapshot_id, "time": ev.occurred_at, "device_id": ev.device_id, "event_id": ev.event_id,
            "config_type": ev.config_type, "file_path": ev.path, "content_hash": ev.sha256 or "",
            "file_size_bytes": ev.size, "raw_content": ev.content, "content_truncated": ev.content_truncated,
            "parsed_data": parsed_data, "change_type": ev.change_type, "previous_hash": ev.previous_sha256,
            "file_modified_time": ev.mtime, "collection_source": f"{ev.trigger}:{ev.watch_mode}",
            "detection_latency_ms": latency, "affected_services": affected, "requires_restart": restart,
            "risk_level": risk,
        }],
        "configuration_change_events": [{
            "id": change_id, "time": ev.occurred_at, "device_id": ev.device_id, "snapshot_id": snapshot_id,
            "config_type": ev.config_type, "file_path": ev.path, "change_type": ev.change_type,
            "old_path": ev.old_path, "affected_services": affected,
            "service_dependencies": imp.dependencies if imp else [], "requires_restart": restart,
            "restart_services": imp.restart_services if imp else [], "changes_summary": summary,
            "risk_level": risk, "confidence_score": imp.confidence if imp else None, "processed": False,
            "notifications_sent": None,
        }],
    }
