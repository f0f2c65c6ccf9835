"""devices: the latest registration of each device; removal is a soft delete."""

from __future__ import annotations

from schema.models import Device
from services.writer.registry import TableRows, projector, table
from shared.events import DeviceChanged

table(
    Device,
    # the newest event (by stream sequence) wins, whatever order a replay applies them in
    "ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, address = EXCLUDED.address, port = EXCLUDED.port, "
    "username = EXCLUDED.username, transport = EXCLUDED.transport, "
    "trust_on_first_use = EXCLUDED.trust_on_first_use, device_type = EXCLUDED.device_type, "
    "description = EXCLUDED.description, tags = EXCLUDED.tags, enabled = EXCLUDED.enabled, "
    "updated_at = EXCLUDED.updated_at, deleted_at = EXCLUDED.deleted_at, stream_seq = EXCLUDED.stream_seq "
    "WHERE devices.stream_seq < EXCLUDED.stream_seq",
)


@projector(DeviceChanged)
def device(ev: DeviceChanged, seq: int) -> TableRows:
    s = ev.spec
    return {"devices": [{
        "id": s.id, "name": s.name, "address": s.address, "port": s.port, "username": s.username,
        "transport": s.transport, "trust_on_first_use": s.trust_on_first_use, "device_type": s.device_type,
        "description": s.description, "tags": s.tags, "enabled": s.enabled, "created_at": ev.occurred_at,
        "updated_at": ev.occurred_at, "deleted_at": ev.occurred_at if ev.action == "removed" else None,
        "stream_seq": seq,
    }]}
