"""inventory: one row per snapshot, with its drift from the previous one."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Mapped, mapped_column

from schema.base import Base, DeviceSeries
from shared.datatypes.inventory.payload import Inventory
from shared.datatypes.spec import TableRows


class InventorySnapshot(DeviceSeries, Base):
    """One row per inventory collection, with its drift from the previous one."""

    __tablename__ = "inventory_snapshots"

    hostname: Mapped[str | None]
    os_name: Mapped[str | None]
    os_version: Mapped[str | None]
    kernel: Mapped[str | None]
    architecture: Mapped[str | None]
    cpu_model: Mapped[str | None]
    cpu_count: Mapped[int | None]
    memory_total_bytes: Mapped[int | None]
    package_manager: Mapped[str | None]
    packages: Mapped[list[Any] | None]
    python_packages: Mapped[list[Any] | None]
    env_vars: Mapped[dict[str, Any] | None]
    drift: Mapped[dict[str, Any] | None]
    has_drift: Mapped[bool] = mapped_column(default=False)


def rows(p: Inventory) -> TableRows:
    return {"inventory_snapshots": [{
        "hostname": p.hostname, "os_name": p.os_name, "os_version": p.os_version, "kernel": p.kernel,
        "architecture": p.architecture, "cpu_model": p.cpu_model, "cpu_count": p.cpu_count,
        "memory_total_bytes": p.memory_total_bytes, "package_manager": p.package_manager, "packages": p.packages,
        "python_packages": p.python_packages, "env_vars": p.env, "drift": p.drift,
        "has_drift": bool(p.drift and p.drift.changed),
    }]}
