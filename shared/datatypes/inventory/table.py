"""inventory: one row per snapshot, with its drift from the previous one."""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Boolean, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from schema.base import Base, DeviceSeries
from shared.datatypes.inventory.payload import Inventory
from shared.datatypes.spec import TableRows


class InventorySnapshot(DeviceSeries, Base):
    """One row per inventory collection, with its drift from the previous one."""

    __tablename__ = "inventory_snapshots"

    hostname: Mapped[str | None] = mapped_column(Text)
    os_name: Mapped[str | None] = mapped_column(Text)
    os_version: Mapped[str | None] = mapped_column(Text)
    kernel: Mapped[str | None] = mapped_column(Text)
    architecture: Mapped[str | None] = mapped_column(Text)
    cpu_model: Mapped[str | None] = mapped_column(Text)
    cpu_count: Mapped[int | None] = mapped_column(BigInteger)
    memory_total_bytes: Mapped[int | None] = mapped_column(BigInteger)
    package_manager: Mapped[str | None] = mapped_column(Text)
    packages: Mapped[list[Any] | None] = mapped_column(JSONB)
    python_packages: Mapped[list[Any] | None] = mapped_column(JSONB)
    env_vars: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    drift: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    has_drift: Mapped[bool] = mapped_column(Boolean, default=False)


def rows(p: Inventory) -> TableRows:
    return {"inventory_snapshots": [{
        "hostname": p.hostname, "os_name": p.os_name, "os_version": p.os_version, "kernel": p.kernel,
        "architecture": p.architecture, "cpu_model": p.cpu_model, "cpu_count": p.cpu_count,
        "memory_total_bytes": p.memory_total_bytes, "package_manager": p.package_manager, "packages": p.packages,
        "python_packages": p.python_packages, "env_vars": p.env, "drift": p.drift,
        "has_drift": bool(p.drift and p.drift.changed),
    }]}
