"""containers: one row per container per snapshot, plus one row (removed = true) per container gone since the last."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Mapped, mapped_column

from schema.base import Base, DeviceSeries
from shared.datatypes.containers.payload import Containers
from shared.datatypes.spec import TableRows


class ContainerSnapshot(DeviceSeries, Base):
    """One row per container per snapshot; a container gone since the last one has a row with ``removed``."""

    __tablename__ = "container_snapshots"

    container_id: Mapped[str] = mapped_column(primary_key=True)
    name: Mapped[str | None]
    image: Mapped[str | None]
    status: Mapped[str | None]
    state: Mapped[str | None]
    health: Mapped[str | None]
    restart_count: Mapped[int | None]
    cpu_usage: Mapped[float | None]
    memory_usage_bytes: Mapped[int | None]
    memory_limit_bytes: Mapped[int | None]
    ports: Mapped[list[Any] | None]
    network_io: Mapped[dict[str, Any] | None]
    block_io: Mapped[dict[str, Any] | None]
    created: Mapped[datetime | None]
    removed: Mapped[bool] = mapped_column(default=False)


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
