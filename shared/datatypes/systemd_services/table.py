"""systemd_services: one row per collection, failed and restarted units listed, every unit as JSONB."""

from __future__ import annotations

from services.writer.projection import Rows, collected, j, table
from shared.collected import SystemdServicesCollected

table("systemd_snapshots", (
    "time", "device_id", "event_id", "units_total", "units_active", "units_failed", "failed_units",
    "restarted_units", "units",
))


@collected(SystemdServicesCollected)
def systemd_services(ev: SystemdServicesCollected) -> Rows:
    p = ev.payload
    return {"systemd_snapshots": [(
        ev.occurred_at, ev.device_id, ev.event_id, p.total, p.active, len(p.failed), j(p.failed), j(p.restarted),
        j(p.units),
    )]}
