"""system_metrics: one row per successful collection; filesystems, disks and interfaces as JSONB."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Mapped, mapped_column

from schema.base import Base, DeviceSeries
from shared.datatypes.spec import TableRows
from shared.datatypes.system_metrics.payload import SystemMetrics


class SystemMetric(DeviceSeries, Base):
    """One row per collection; filesystems, disks and interfaces as JSONB."""

    __tablename__ = "system_metrics"

    cpu_usage: Mapped[float | None] = mapped_column(comment="percent")
    cpu_count: Mapped[int | None]
    cpu_iowait: Mapped[float | None]
    memory_usage: Mapped[float | None] = mapped_column(comment="percent")
    memory_total_bytes: Mapped[int | None]
    memory_used_bytes: Mapped[int | None]
    memory_available_bytes: Mapped[int | None]
    swap_total_bytes: Mapped[int | None]
    swap_used_bytes: Mapped[int | None]
    load_1: Mapped[float | None]
    load_5: Mapped[float | None]
    load_15: Mapped[float | None]
    uptime_seconds: Mapped[float | None]
    disk_usage: Mapped[list[Any] | None]
    disk_io: Mapped[list[Any] | None]
    network_traffic: Mapped[list[Any] | None]


def rows(p: SystemMetrics) -> TableRows:
    return {"system_metrics": [{
        "cpu_usage": p.cpu_percent, "cpu_count": p.cpu_count, "cpu_iowait": p.cpu_iowait_percent,
        "memory_usage": p.memory_percent, "memory_total_bytes": p.memory_total_bytes,
        "memory_used_bytes": p.memory_used_bytes, "memory_available_bytes": p.memory_available_bytes,
        "swap_total_bytes": p.swap_total_bytes, "swap_used_bytes": p.swap_used_bytes, "load_1": p.load_1,
        "load_5": p.load_5, "load_15": p.load_15, "uptime_seconds": p.uptime_seconds, "disk_usage": p.filesystems,
        "disk_io": p.disks, "network_traffic": p.network,
    }]}
