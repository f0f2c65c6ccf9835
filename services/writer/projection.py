"""Pure projection of events into table rows: ``rows(event, stream_seq) -> {table: [row, ...]}``.

Every row carries what makes it unique (the event's time and id), so projecting the same
event twice yields the same rows and the sink's ``ON CONFLICT`` drops the repeat.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import msgspec

from shared.events import Audited, Collected, DeviceChanged, Event, RefreshRequested, SystemMetricsCollected

Row = tuple[Any, ...]
Rows = dict[str, list[Row]]

COLUMNS: dict[str, tuple[str, ...]] = {
    "data_collection_audit": (
        "time", "event_id", "device_id", "operation_id", "data_type", "collection_method", "collection_source",
        "trigger", "force_refresh", "cache_hit", "duration_ms", "ssh_command_count", "data_size_bytes", "status",
        "error_message", "warnings", "records_created", "records_updated", "freshness_threshold",
    ),
    "system_metrics": (
        "time", "device_id", "event_id", "cpu_usage", "cpu_count", "cpu_iowait", "memory_usage",
        "memory_total_bytes", "memory_used_bytes", "memory_available_bytes", "swap_total_bytes", "swap_used_bytes",
        "load_1", "load_5", "load_15", "uptime_seconds", "disk_usage", "disk_io", "network_traffic",
    ),
    "devices": (
        "id", "name", "address", "port", "username", "transport", "trust_on_first_use", "device_type",
        "description", "tags", "enabled", "created_at", "updated_at", "deleted_at", "stream_seq",
    ),
}

# How a repeated key is resolved: time-series rows are immutable, devices take the newest event.
CONFLICT: dict[str, str] = {
    "data_collection_audit": "ON CONFLICT DO NOTHING",
    "system_metrics": "ON CONFLICT DO NOTHING",
    "devices": (
        "ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, address = EXCLUDED.address, port = EXCLUDED.port, "
        "username = EXCLUDED.username, transport = EXCLUDED.transport, "
        "trust_on_first_use = EXCLUDED.trust_on_first_use, device_type = EXCLUDED.device_type, "
        "description = EXCLUDED.description, tags = EXCLUDED.tags, enabled = EXCLUDED.enabled, "
        "updated_at = EXCLUDED.updated_at, deleted_at = EXCLUDED.deleted_at, stream_seq = EXCLUDED.stream_seq "
        "WHERE devices.stream_seq < EXCLUDED.stream_seq"
    ),
}


class ProjectionError(ValueError):
    """An event that decodes but cannot be projected (e.g. no device_id)."""


_json = msgspec.json.Encoder()


def _j(value: Any) -> str | None:
    return None if value is None else _json.encode(value).decode()


def _audit_row(ev: Collected, records_created: int) -> Row:
    return (
        ev.occurred_at, ev.event_id, ev.device_id, ev.operation_id, ev.data_type, ev.collection_method,
        f"{ev.service}/{ev.instance}", ev.trigger, ev.force_refresh, False, round(ev.duration_ms),
        ev.ssh_command_count, ev.data_size_bytes, ev.status, ev.error, _j(ev.warnings), records_created, 0,
        ev.freshness_threshold_s,
    )


def _system_metrics_row(ev: SystemMetricsCollected) -> Row:
    p = ev.payload
    assert p is not None
    return (
        ev.occurred_at, ev.device_id, ev.event_id, p.cpu_percent, p.cpu_count, p.cpu_iowait_percent,
        p.memory_percent, p.memory_total_bytes, p.memory_used_bytes, p.memory_available_bytes, p.swap_total_bytes,
        p.swap_used_bytes, p.load_1, p.load_5, p.load_15, p.uptime_seconds, _j(p.filesystems), _j(p.disks),
        _j(p.network),
    )


def _device_row(ev: DeviceChanged, stream_seq: int) -> Row:
    s = ev.spec
    deleted = ev.occurred_at if ev.action == "removed" else None
    return (
        s.id, s.name, s.address, s.port, s.username, s.transport, s.trust_on_first_use, s.device_type,
        s.description, _j(s.tags), s.enabled, ev.occurred_at, ev.occurred_at, deleted, stream_seq,
    )


def rows(event: Event, stream_seq: int = 0) -> Rows:
    """The rows one event projects to; raises ProjectionError when it cannot be projected."""
    out: Rows = defaultdict(list)
    match event:
        case SystemMetricsCollected(payload=payload):
            if event.device_id is None:
                raise ProjectionError("collected event without device_id")
            has_row = payload is not None and event.status in ("success", "partial")
            if has_row:
                out["system_metrics"].append(_system_metrics_row(event))
            out["data_collection_audit"].append(_audit_row(event, int(has_row)))
        case DeviceChanged():
            out["devices"].append(_device_row(event, stream_seq))
        case Audited():
            if event.data_type is not None:
                out["data_collection_audit"].append((
                    event.occurred_at, event.event_id, event.device_id, event.operation_id, event.data_type,
                    "cache" if event.cache_hit else event.action, f"{event.service}/{event.instance}",
                    event.trigger, event.force_refresh, event.cache_hit, round(event.duration_ms),
                    event.ssh_command_count, event.data_size_bytes, event.status, event.error,
                    _j(event.warnings), 0, 0, None,
                ))
        case RefreshRequested():
            pass  # requests are not projected; their outcome arrives as a collected event
        case _:
            raise ProjectionError(f"no projection for {type(event).__name__}")
    return out


def merge(into: Rows, more: Rows) -> None:
    for table, rs in more.items():
        into.setdefault(table, []).extend(rs)
