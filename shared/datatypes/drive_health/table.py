"""drive_health: one row per drive per collection; the attribute table as JSONB."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Mapped, mapped_column

from schema.base import Base, DeviceSeries
from shared.datatypes.drive_health.payload import DriveHealth as DriveHealthPayload
from shared.datatypes.spec import TableRows


class DriveHealth(DeviceSeries, Base):
    """One row per drive per collection; the SMART attribute table as JSONB."""

    __tablename__ = "drive_health"

    drive_name: Mapped[str] = mapped_column(primary_key=True)
    model: Mapped[str | None]
    serial_number: Mapped[str | None]
    firmware: Mapped[str | None]
    capacity_bytes: Mapped[int | None]
    smart_attributes: Mapped[list[Any] | None]
    temperature_celsius: Mapped[int | None]
    power_on_hours: Mapped[int | None]
    is_healthy: Mapped[bool | None]
    smartctl_exit_status: Mapped[int | None]


def rows(p: DriveHealthPayload) -> TableRows:
    return {"drive_health": [{
        "drive_name": d.name, "model": d.model, "serial_number": d.serial, "firmware": d.firmware,
        "capacity_bytes": d.capacity_bytes, "smart_attributes": d.attributes,
        "temperature_celsius": d.temperature_celsius, "power_on_hours": d.power_on_hours, "is_healthy": d.healthy,
        "smartctl_exit_status": d.smartctl_exit_status,
    } for d in p.drives]}
