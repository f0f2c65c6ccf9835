"""Models of the data-type reads: latest payloads, stored rows over time and their query parameters."""

from __future__ import annotations

import uuid
from datetime import datetime
from functools import cache
from typing import Any

import msgspec
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    create_model,
    field_validator,
    model_validator,
)

from services.api.limits import max_page
from services.api.schemas import (
    BUCKET_PATTERN,
    CollectedData,
    TimeFilter,
    model_of,
    parse_bucket,
)


@cache
def collected_model(payload: type[msgspec.Struct]) -> type[CollectedData]:
    """``CollectedData`` with the payload typed as ``payload`` (for the OpenAPI document)."""
    return create_model(f"{payload.__name__}Data", __base__=CollectedData,
                        payload=(model_of(payload) | None, None))  # type: ignore[operator]


class HistoryQuery(TimeFilter):
    """Stored rows in an optional window [start, end), oldest first, paged."""

    model_config = ConfigDict(extra="forbid")

    page: int = Field(default=1, ge=1, le=max_page(5000))
    page_size: int = Field(default=100, ge=1, le=5000)


class DriveHistoryQuery(HistoryQuery):
    """A drive's rows, or with ``bucket`` their aggregates per bucket (``start`` needed, ``end`` defaults to now)."""

    bucket: str | None = Field(default=None, json_schema_extra={"pattern": BUCKET_PATTERN}, description="aggregate into buckets of 1m..1d, e.g. 1h")

    @field_validator("bucket")
    @classmethod
    def _width(cls, value: str | None) -> str | None:
        if value is not None:
            parse_bucket(value)
        return value

    @model_validator(mode="after")
    def _bucket_needs_start(self) -> DriveHistoryQuery:
        if self.bucket is not None and self.start is None:
            raise ValueError("bucket needs a start")
        return self


class NetworkHistoryQuery(HistoryQuery):
    interface: str | None = Field(default=None, min_length=1, max_length=64, description="one interface, e.g. eth0")


class ZfsHistoryQuery(HistoryQuery):
    pool: str | None = Field(default=None, min_length=1, max_length=255, description="one pool, e.g. tank")


class _Row(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ContainerRow(_Row):
    """One container in one snapshot (``removed``: gone since the previous snapshot)."""

    time: datetime
    event_id: uuid.UUID
    container_id: str
    name: str | None
    image: str | None
    status: str | None
    state: str | None
    health: str | None
    restart_count: int | None
    cpu_usage: float | None
    memory_usage_bytes: int | None
    memory_limit_bytes: int | None
    ports: list[Any] | None
    network_io: dict[str, Any] | None
    block_io: dict[str, Any] | None
    created: datetime | None
    removed: bool


class DriveRow(_Row):
    """One drive in one drive_health collection."""

    time: datetime
    event_id: uuid.UUID
    drive_name: str
    model: str | None
    serial_number: str | None
    firmware: str | None
    capacity_bytes: int | None
    temperature_celsius: int | None
    power_on_hours: int | None
    is_healthy: bool | None
    smartctl_exit_status: int | None
    smart_attributes: list[Any] | None


class DriveBucket(BaseModel):
    """A drive's readings aggregated over one time bucket; attributes are those of its last reading."""

    bucket: datetime
    samples: int
    temperature_avg: float | None
    temperature_min: int | None
    temperature_max: int | None
    power_on_hours: int | None
    is_healthy: bool | None = Field(description="false if any reading failed, null if none was assessed")
    smart_attributes: list[Any] | None


class DriveBuckets(BaseModel):
    """A drive's history in buckets, oldest first."""

    device_id: uuid.UUID
    drive: str
    start: datetime
    end: datetime
    bucket: str
    function: str
    items: list[DriveBucket]


class InterfaceRow(_Row):
    """One interface's state and counters in one network collection."""

    time: datetime
    event_id: uuid.UUID
    interface: str
    state: str | None
    mtu: int | None
    mac: str | None
    link_type: str | None
    kind: str | None
    master: str | None
    addresses: list[Any] | None
    rx_bytes: int | None
    rx_packets: int | None
    rx_errors: int | None
    rx_dropped: int | None
    tx_bytes: int | None
    tx_packets: int | None
    tx_errors: int | None
    tx_dropped: int | None


class PoolRow(_Row):
    """One pool's health, space, errors and scrub in one zfs collection."""

    time: datetime
    event_id: uuid.UUID
    pool: str
    health: str
    size_bytes: int | None
    allocated_bytes: int | None
    free_bytes: int | None
    fragmentation_percent: int | None
    capacity_percent: int | None
    read_errors: int
    write_errors: int
    checksum_errors: int
    status: str | None
    scrub_state: str | None
    last_scrub_end: str | None
    scrub_errors: int | None
    errors: str | None
    vdevs: list[Any] | None


class DriftRow(_Row):
    """An inventory snapshot that differs from the previous one, with what changed."""

    time: datetime
    event_id: uuid.UUID
    hostname: str | None
    os_name: str | None
    os_version: str | None
    kernel: str | None
    drift: dict[str, Any] | None
