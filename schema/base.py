"""The declarative base every table model derives from, and the key columns of a device's time series."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, DateTime, Float, Index, MetaData, Text, text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

TZ = DateTime(timezone=True)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    # Integers are 64-bit and strings unbounded unless a column says otherwise (String(n), Integer).
    type_annotation_map = {
        dict[str, Any]: JSONB, list[Any]: JSONB, datetime: TZ, uuid.UUID: UUID(as_uuid=True),
        int: BigInteger, str: Text, float: Float,
    }


class DeviceSeries:
    """``time``, ``device_id`` and ``event_id`` of a table holding one device's collections, and the
    ``(device_id, time DESC)`` index every read of one device uses. A table with more key columns
    (a pool, a drive) declares them as primary keys of its own."""

    if TYPE_CHECKING:
        __tablename__: str  # set by each table class

    time: Mapped[datetime] = mapped_column(primary_key=True, sort_order=-3)
    device_id: Mapped[uuid.UUID] = mapped_column(primary_key=True, sort_order=-2)
    event_id: Mapped[uuid.UUID] = mapped_column(sort_order=-1)

    @declared_attr.directive
    @classmethod
    def __table_args__(cls) -> tuple[Index, ...]:
        return (Index(f"ix_{cls.__tablename__}_device_time", "device_id", text("time DESC")),)
