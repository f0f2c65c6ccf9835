"""containers: one row per container per snapshot, plus one row (removed = true) per container gone since the last."""

from __future__ import annotations

from services.writer.projection import Rows, collected, j, table
from shared.collected import ContainersCollected

table("container_snapshots", (
    "time", "device_id", "container_id", "event_id", "name", "image", "status", "state", "health", "restart_count",
    "cpu_usage", "memory_usage_bytes", "memory_limit_bytes", "ports", "network_io", "block_io", "created", "removed",
))


@collected(ContainersCollected)
def containers(ev: ContainersCollected) -> Rows:
    p = ev.payload
    rows = [(
        ev.occurred_at, ev.device_id, c.id, ev.event_id, c.name, c.image, c.status, c.state, c.health, c.restart_count,
        c.cpu_percent, c.memory_bytes, c.memory_limit_bytes, j(c.ports),
        j({"rx_bytes": c.net_rx_bytes, "tx_bytes": c.net_tx_bytes}),
        j({"read_bytes": c.block_read_bytes, "write_bytes": c.block_write_bytes}), c.created, False,
    ) for c in p.containers]
    rows += [(
        ev.occurred_at, ev.device_id, r.id, ev.event_id, r.name, r.image, None, "removed", None, None,
        None, None, None, None, None, None, None, True,
    ) for r in p.removed]
    return {"container_snapshots": rows}
