"""inventory: one row per snapshot, with its drift from the previous one."""

from __future__ import annotations

from services.writer.projection import Rows, collected, j, table
from shared.collected import InventoryCollected

table("inventory_snapshots", (
    "time", "device_id", "event_id", "hostname", "os_name", "os_version", "kernel", "architecture", "cpu_model",
    "cpu_count", "memory_total_bytes", "package_manager", "packages", "python_packages", "env_vars", "drift",
    "has_drift",
))


@collected(InventoryCollected)
def inventory(ev: InventoryCollected) -> Rows:
    p = ev.payload
    return {"inventory_snapshots": [(
        ev.occurred_at, ev.device_id, ev.event_id, p.hostname, p.os_name, p.os_version, p.kernel, p.architecture,
        p.cpu_model, p.cpu_count, p.memory_total_bytes, p.package_manager, j(p.packages), j(p.python_packages),
        j(p.env), j(p.drift), bool(p.drift and p.drift.changed),
    )]}
