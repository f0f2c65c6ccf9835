"""systemd_services: one row per collection, failed and restarted units listed, every unit as JSONB."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Mapped, mapped_column

from schema.base import Base, DeviceSeries
from shared.datatypes.spec import TableRows
from shared.datatypes.systemd_services.payload import SystemdServices


class SystemdSnapshot(DeviceSeries, Base):
    """One row per systemd_services collection: counts, failed and restarted units, every unit as JSONB."""

    __tablename__ = "systemd_snapshots"

    units_total: Mapped[int] = mapped_column(default=0)
    units_active: Mapped[int] = mapped_column(default=0)
    units_failed: Mapped[int] = mapped_column(default=0)
    failed_units: Mapped[list[Any] | None]
    restarted_units: Mapped[list[Any] | None]
    units: Mapped[list[Any] | None]


def rows(p: SystemdServices) -> TableRows:
    return {"systemd_snapshots": [{
        "units_total": p.total, "units_active": p.active, "units_failed": len(p.failed), "failed_units": p.failed,
        "restarted_units": p.restarted, "units": p.units,
    }]}
