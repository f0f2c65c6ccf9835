"""data_collection_audit: one row per collection operation, and per audited read."""

from __future__ import annotations

from services.writer.projection import Row, Rows, j, projector, table
from shared.envelope import Collected
from shared.events import Audited, RefreshRequested

table("data_collection_audit", (
    "time", "event_id", "device_id", "operation_id", "data_type", "collection_method", "collection_source",
    "trigger", "force_refresh", "cache_hit", "duration_ms", "ssh_command_count", "data_size_bytes", "status",
    "error_message", "warnings", "records_created", "records_updated", "freshness_threshold",
))


def audit_row(ev: Collected, records_created: int) -> Row:
    return (
        ev.occurred_at, ev.event_id, ev.device_id, ev.operation_id, ev.data_type, ev.collection_method,
        f"{ev.service}/{ev.instance}", ev.trigger, ev.force_refresh, ev.skipped_fresh, round(ev.duration_ms),
        ev.ssh_command_count, ev.data_size_bytes, ev.status, ev.error, j(ev.warnings), records_created, 0,
        ev.freshness_threshold_s,
    )


@projector(Audited)
def audited(ev: Audited, seq: int) -> Rows:
    if ev.data_type is None:
        return {}
    return {"data_collection_audit": [(
        ev.occurred_at, ev.event_id, ev.device_id, ev.operation_id, ev.data_type,
        "cache" if ev.cache_hit else ev.action, f"{ev.service}/{ev.instance}", ev.trigger, ev.force_refresh,
        ev.cache_hit, round(ev.duration_ms), ev.ssh_command_count, ev.data_size_bytes, ev.status, ev.error,
        j(ev.warnings), 0, 0, None,
    )]}


@projector(RefreshRequested)
def refresh(ev: RefreshRequested, seq: int) -> Rows:
    return {}  # requests are not projected; their outcome arrives as a collected event
