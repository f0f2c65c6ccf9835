"""mounts: one row per mount per collection."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean
from sqlalchemy.orm import Mapped, mapped_column

from schema.base import Base, DeviceSeries
from shared.datatypes.mounts.payload import Mounts
from shared.datatypes.spec import TableRows


class MountRow(DeviceSeries, Base):
    """One mount of one collection; the mount id is unique within the namespace (a mount point is not)."""

    __tablename__ = "mounts"

    mount_id: Mapped[int] = mapped_column(primary_key=True)
    parent_id: Mapped[int]
    device: Mapped[str]
    root: Mapped[str]
    mount_point: Mapped[str]
    fs_type: Mapped[str]
    source: Mapped[str]
    read_only: Mapped[bool] = mapped_column(Boolean)
    options: Mapped[list[Any] | None]
    super_options: Mapped[list[Any] | None]
    propagation: Mapped[list[Any] | None]


def rows(p: Mounts) -> TableRows:
    return {"mounts": [{
        "mount_id": m.mount_id, "parent_id": m.parent_id, "device": m.device, "root": m.root,
        "mount_point": m.mount_point, "fs_type": m.fs_type, "source": m.source, "read_only": m.read_only,
        "options": m.options, "super_options": m.super_options, "propagation": m.propagation,
    } for m in p.mounts]}
