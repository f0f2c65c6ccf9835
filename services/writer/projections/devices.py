"""devices: the latest registration of each device; removal is a soft delete."""

from __future__ import annotations

from services.writer.projection import Rows, j, projector, table
from shared.events import DeviceChanged

table(
    "devices",
    ("id", "name", "address", "port", "username", "transport", "trust_on_first_use", "device_type",
     "description", "tags", "enabled", "created_at", "updated_at", "deleted_at", "stream_seq"),
    # the newest event (by stream sequence) wins, whatever order a replay applies them in
    "ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, address = EXCLUDED.address, port = EXCLUDED.port, "
    "username = EXCLUDED.username, transport = EXCLUDED.transport, "
    "trust_on_first_use = EXCLUDED.trust_on_first_use, device_type = EXCLUDED.device_type, "
    "description = EXCLUDED.description, tags = EXCLUDED.tags, enabled = EXCLUDED.enabled, "
    "updated_at = EXCLUDED.updated_at, deleted_at = EXCLUDED.deleted_at, stream_seq = EXCLUDED.stream_seq "
    "WHERE devices.stream_seq < EXCLUDED.stream_seq",
)


@projector(DeviceChanged)
def device(ev: DeviceChanged, seq: int) -> Rows:
    s = ev.spec
    deleted = ev.occurred_at if ev.action == "removed" else None
    return {"devices": [(
        s.id, s.name, s.address, s.port, s.username, s.transport, s.trust_on_first_use, s.device_type,
        s.description, j(s.tags), s.enabled, ev.occurred_at, ev.occurred_at, deleted, seq,
    )]}
