"""zfs: one row per pool per collection; vdevs and the pool's datasets as JSONB."""

from __future__ import annotations

from services.writer.projection import Rows, collected, j, table
from shared.collected import ZfsCollected

table("zfs_pools", (
    "time", "device_id", "pool", "event_id", "health", "size_bytes", "allocated_bytes", "free_bytes",
    "fragmentation_percent", "capacity_percent", "read_errors", "write_errors", "checksum_errors", "status",
    "scrub_state", "last_scrub_end", "scrub_errors", "errors", "vdevs", "datasets",
))


@collected(ZfsCollected)
def zfs(ev: ZfsCollected) -> Rows:
    p = ev.payload

    def datasets(pool: str) -> list:
        return [d for d in p.datasets if d.name == pool or d.name.startswith(pool + "/")]

    return {"zfs_pools": [(
        ev.occurred_at, ev.device_id, pool.name, ev.event_id, pool.health, pool.size_bytes, pool.allocated_bytes,
        pool.free_bytes, pool.fragmentation_percent, pool.capacity_percent, pool.read_errors, pool.write_errors,
        pool.checksum_errors, pool.status, pool.scrub_state, pool.last_scrub_end, pool.scrub_errors, pool.errors,
        j(pool.vdevs), j(datasets(pool.name)),
    ) for pool in p.pools]}
