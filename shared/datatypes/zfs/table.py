"""zfs: one row per pool per collection; vdevs and the pool's datasets as JSONB."""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from schema.base import Base, DeviceSeries
from shared.datatypes.spec import TableRows
from shared.datatypes.zfs.payload import Dataset, Zfs


class ZfsPool(DeviceSeries, Base):
    """One row per pool per zfs collection; the vdev tree as JSONB."""

    __tablename__ = "zfs_pools"

    pool: Mapped[str] = mapped_column(Text, primary_key=True)
    health: Mapped[str] = mapped_column(Text)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    allocated_bytes: Mapped[int | None] = mapped_column(BigInteger)
    free_bytes: Mapped[int | None] = mapped_column(BigInteger)
    fragmentation_percent: Mapped[int | None] = mapped_column(BigInteger)
    capacity_percent: Mapped[int | None] = mapped_column(BigInteger)
    read_errors: Mapped[int] = mapped_column(BigInteger, default=0)
    write_errors: Mapped[int] = mapped_column(BigInteger, default=0)
    checksum_errors: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str | None] = mapped_column(Text)
    scrub_state: Mapped[str | None] = mapped_column(Text)
    last_scrub_end: Mapped[str | None] = mapped_column(Text, comment="host local time, ISO 8601")
    scrub_errors: Mapped[int | None] = mapped_column(BigInteger)
    errors: Mapped[str | None] = mapped_column(Text)
    vdevs: Mapped[list[Any] | None] = mapped_column(JSONB)
    datasets: Mapped[list[Any] | None] = mapped_column(JSONB)


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
