"""data_collection_audit: one row per collection operation, and per audited read."""

from __future__ import annotations

from typing import Any

from schema.models import DataCollectionAudit
from services.writer.registry import TableRows, projector, table
from shared.envelope import Collected
from shared.events import Audited, RefreshRequested

table(DataCollectionAudit)


def audit_row(ev: Collected, records_created: int) -> dict[str, Any]:
    return {
        "time": ev.occurred_at, "event_id": ev.event_id, "device_id": ev.device_id, "operation_id": ev.operation_id,
        "data_type": ev.data_type, "collection_method": ev.collection_method,
        "collection_source": f"{ev.service}/{ev.instance}", "trigger": ev.trigger, "force_refresh": ev.force_refresh,
        "cache_hit": ev.skipped_fresh, "duration_ms": round(ev.duration_ms), "ssh_command_count": ev.ssh_command_count,
        "data_size_bytes": ev.data_size_bytes, "status": ev.status, "error_message": ev.error,
        "warnings": ev.warnings, "records_created": records_created, "records_updated": 0,
        "freshness_threshold": ev.freshness_threshold_s,
    }


@projector(Audited)
def audited(ev: Audited, seq: int) -> TableRows:
    if ev.data_type is None:
        return {}
    return {"data_collection_audit": [{
        "time": ev.occurred_at, "event_id": ev.event_id, "device_id": ev.device_id, "operation_id": ev.operation_id,
        "data_type": ev.data_type, "collection_method": "cache" if ev.cache_hit else ev.action,
        "collection_source": f"{ev.service}/{ev.instance}", "trigger": ev.trigger, "force_refresh": ev.force_refresh,
        "cache_hit": ev.cache_hit, "duration_ms": round(ev.duration_ms), "ssh_command_count": ev.ssh_command_count,
        "data_size_bytes": ev.data_size_bytes, "status": ev.status, "error_message": ev.error,
        "warnings": ev.warnings, "records_created": 0, "records_updated": 0, "freshness_threshold": None,
    }]}


@projector(RefreshRequested)
def refresh(ev: RefreshRequested, seq: int) -> TableRows:
    return {}  # requests are not projected; their outcome arrives as a collected event
