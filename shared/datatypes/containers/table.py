"""containers: one row per container per snapshot, plus one row (removed = true) per container gone since the last."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Float, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from schema.base import Base, DeviceSeries
from shared.datatypes.containers.payload import Containers
from shared.datatypes.spec import TableRows


class ContainerSnapshot(DeviceSeries, Base):
    __tablename__ = "container_snapshots"

    container_id: Mapped[str] = mapped_column(Text, primary_key=True)
    name: Mapped[str | None] = mapped_column(Text)
    image: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str | None] = mapped_column(Text)
    health: Mapped[str | None] = mapped_column(Text)
    restart_count: Mapped[int | None] = mapped_column(BigInteger)
    cpu_usage: Mapped[float | None] = mapped_column(Float)
    memory_usage_bytes: Mapped[int | None] = mapped_column(BigInteger)
    memory_limit_bytes: Mapped[int | None] = mapped_column(BigInteger)
    ports: Mapped[list[Any] | None] = mapped_column(JSONB)
    network_io: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    block_io: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created: Mapped[datetime | None]
    removed: Mapped[bool] = mapped_column(Boolean, default=False)


def rows(p: Containers) -> TableRows:
    out: list[dict[str, Any]] = [{
        "container_id": c.id, "name": c.name, "image": c.image, "status": c.status, "state": c.state,
        "health": c.health, "restart_count": c.restart_count, "cpu_usage": c.cpu_percent,
        "memory_usage_bytes": c.memory_bytes, "memory_limit_bytes": c.memory_limit_bytes, "ports": c.ports,
        "network_io": {"rx_bytes": c.net_rx_bytes, "tx_bytes": c.net_tx_bytes},
        "block_io": {"read_bytes": c.block_read_bytes, "write_bytes": c.block_write_bytes},
        "created": c.created, "removed": False,
    } for c in p.containers]
    out += [{
        "container_id": r.id, "name": r.name, "image": r.image, "status": None, "state": "removed", "health": None,
        "restart_count": None, "cpu_usage": None, "memory_usage_bytes": None, "memory_limit_bytes": None,
        "ports": None, "network_io": None, "block_io": None, "created": None, "removed": True,
    } for r in p.removed]
    return {"container_snapshots": out}
