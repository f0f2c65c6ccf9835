"""system_metrics: one row per successful collection."""

from __future__ import annotations

from services.writer.projection import Rows, collected, j, table
from shared.collected import SystemMetricsCollected

table("system_metrics", (
    "time", "device_id", "event_id", "cpu_usage", "cpu_count", "cpu_iowait", "memory_usage",
    "memory_total_bytes", "memory_used_bytes", "memory_available_bytes", "swap_total_bytes", "swap_used_bytes",
    "load_1", "load_5", "load_15", "uptime_seconds", "disk_usage", "disk_io", "network_traffic",
))


@collected(SystemMetricsCollected)
def system_metrics(ev: SystemMetricsCollected) -> Rows:
    p = ev.payload
    return {"system_metrics": [(
        ev.occurred_at, ev.device_id, ev.event_id, p.cpu_percent, p.cpu_count, p.cpu_iowait_percent,
        p.memory_percent, p.memory_total_bytes, p.memory_used_bytes, p.memory_available_bytes, p.swap_total_bytes,
        p.swap_used_bytes, p.load_1, p.load_5, p.load_15, p.uptime_seconds, j(p.filesystems), j(p.disks),
        j(p.network),
    )]}
