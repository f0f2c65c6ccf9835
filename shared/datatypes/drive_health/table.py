"""drive_health: one row per drive per collection; the attribute table as JSONB."""

from __future__ import annotations

from services.writer.projection import Rows, collected, j, table
from shared.collected import DriveHealthCollected

table("drive_health", (
    "time", "device_id", "drive_name", "event_id", "model", "serial_number", "firmware", "capacity_bytes",
    "smart_attributes", "temperature_celsius", "power_on_hours", "is_healthy", "smartctl_exit_status",
))


@collected(DriveHealthCollected)
def drive_health(ev: DriveHealthCollected) -> Rows:
    return {"drive_health": [(
        ev.occurred_at, ev.device_id, d.name, ev.event_id, d.model, d.serial, d.firmware, d.capacity_bytes,
        j(d.attributes), d.temperature_celsius, d.power_on_hours, d.healthy, d.smartctl_exit_status,
    ) for d in ev.payload.drives]}
