"""zfs: one row per pool per collection; vdevs and the pool's datasets as JSONB."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Mapped, mapped_column

from schema.base import Base, DeviceSeries
from shared.datatypes.spec import TableRows
from shared.datatypes.zfs.payload import Dataset, Zfs


class ZfsPool(DeviceSeries, Base):
    """One row per pool per zfs collection; the vdev tree as JSONB."""

    __tablename__ = "zfs_pools"

    pool: Mapped[str] = mapped_column(primary_key=True)
    health: Mapped[str]
    size_bytes: Mapped[int | None]
    allocated_bytes: Mapped[int | None]
    free_bytes: Mapped[int | None]
    fragmentation_percent: Mapped[int | None]
    capacity_percent: Mapped[int | None]
    read_errors: Mapped[int] = mapped_column(default=0)
    write_errors: Mapped[int] = mapped_column(default=0)
    checksum_errors: Mapped[int] = mapped_column(default=0)
    status: Mapped[str | None]
    scrub_state: Mapped[str | None]
    last_scrub_end: Mapped[str | None] = mapped_column(comment="host local time, ISO 8601")
    scrub_errors: Mapped[int | None]
    errors: Mapped[str | None]
    vdevs: Mapped[list[Any] | None]
    datasets: Mapped[list[Any] | None]


def rows(p: Zfs) -> TableRows:
    def datasets(pool: str) -> list[Dataset]:
        return [d for d in p.datasets if d.name == pool or d.name.startswith(pool + "/")]

    return {"zfs_pools": [{
        "pool": pool.name, "health": pool.health, "size_bytes": pool.size_bytes,
        "allocated_bytes": pool.allocated_bytes, "free_bytes": pool.free_bytes,
        "fragmentation_percent": pool.fragmentation_percent, "capacity_percent": pool.capacity_percent,
        "read_errors": pool.read_errors, "write_errors": pool.write_errors, "checksum_errors": pool.checksum_errors,
        "status": pool.status, "scrub_state": pool.scrub_state, "last_scrub_end": pool.last_scrub_end,
        "scrub_errors": pool.scrub_errors, "errors": pool.errors, "vdevs": pool.vdevs, "datasets": datasets(pool.name),
    } for pool in p.pools]}
