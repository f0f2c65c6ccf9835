"""Response and request models. Shared event structs are wrapped, never redefined by hand."""

from __future__ import annotations

import math
import types
import uuid
from datetime import datetime, timezone
from functools import cache
from typing import Annotated, Any, Generic, Literal, TypeVar, Union, get_args, get_origin

import msgspec
from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from shared.events import DeviceSpec
from shared.names import DEVICE_NAME_RE
from shared.payloads.system_metrics import SystemMetrics

T = TypeVar("T")


def _pydantic_type(tp: Any) -> Any:
    """The pydantic-compatible form of a msgspec field type (nested Structs become models)."""
    origin = get_origin(tp)
    if origin is Annotated:
        return _pydantic_type(get_args(tp)[0])
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return model_of(tp)
    if origin in (Union, types.UnionType):
        return Union[tuple(_pydantic_type(a) for a in get_args(tp))]
    if origin in (list, dict, tuple, set):
        return origin[tuple(_pydantic_type(a) for a in get_args(tp))]
    return tp


@cache
def model_of(struct: type[msgspec.Struct]) -> type[BaseModel]:
    """A pydantic model with exactly the fields, types and defaults of a msgspec Struct."""
    fields: dict[str, Any] = {}
    for f in msgspec.structs.fields(struct):
        if f.required:
            default: Any = ...
        elif f.default_factory is not msgspec.NODEFAULT:
            default = Field(default_factory=f.default_factory)
        else:
            default = f.default
        fields[f.name] = (_pydantic_type(f.type), default)
    return create_model(struct.__name__ + "Model", **fields)


DeviceSpecModel = model_of(DeviceSpec)
SystemMetricsModel = model_of(SystemMetrics)


class Page(BaseModel, Generic[T]):
    """One page of a list: the PaginatedResponse shape of the API contract."""

    items: list[T]
    total_count: int
    page: int
    page_size: int
    total_pages: int

    @classmethod
    def of(cls, items: list[Any], total_count: int, page: int, page_size: int) -> "Page[Any]":
        return cls(
            items=items, total_count=total_count, page=page, page_size=page_size,
            total_pages=math.ceil(total_count / page_size) if page_size else 0,
        )


class DeviceCreate(BaseModel):
    """A device to register; the server assigns its id."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=DEVICE_NAME_RE.pattern, description="1-63 letters, digits, '-' or '_'")
    address: str = Field(default="127.0.0.1", min_length=1, max_length=255)
    port: int = Field(default=22, ge=1, le=65535)
    username: str | None = Field(default=None, max_length=64)
    transport: Literal["ssh", "local"] = "ssh"
    trust_on_first_use: bool = False
    device_type: str | None = Field(default=None, max_length=50)
    description: str | None = None
    tags: dict[str, str] = {}
    enabled: bool = True

    def spec(self) -> DeviceSpec:
        return DeviceSpec(id=uuid.uuid4(), **self.model_dump())


class DeviceResponse(DeviceSpecModel):  # type: ignore[misc, valid-type]
    """A registered device and, per data type, its latest collection outcome."""

    status: Literal["enabled", "disabled"]
    last_successful_collection: dict[str, datetime] = {}
    last_collection_status: dict[str, str] = {}

    @classmethod
    def build(cls, spec: DeviceSpec, collections: dict[str, tuple[str | None, datetime | None]]) -> "DeviceResponse":
        return cls(
            **msgspec.structs.asdict(spec),
            status="enabled" if spec.enabled else "disabled",
            last_successful_collection={t: ok for t, (_, ok) in collections.items() if ok is not None},
            last_collection_status={t: s for t, (s, _) in collections.items() if s is not None},
        )


class SystemMetricsLatest(SystemMetricsModel):  # type: ignore[misc, valid-type]
    """The latest system metrics of a device, from the cache or the database."""

    device_id: uuid.UUID
    device: str
    time: datetime
    age_seconds: float
    source: Literal["cache", "database"]


class SystemMetricRow(BaseModel):
    """One row of the system_metrics table."""

    model_config = ConfigDict(from_attributes=True)

    time: datetime
    device_id: uuid.UUID
    event_id: uuid.UUID
    cpu_usage: float | None
    cpu_count: int | None
    cpu_iowait: float | None
    memory_usage: float | None
    memory_total_bytes: int | None
    memory_used_bytes: int | None
    memory_available_bytes: int | None
    swap_total_bytes: int | None
    swap_used_bytes: int | None
    load_1: float | None
    load_5: float | None
    load_15: float | None
    uptime_seconds: float | None
    disk_usage: list[Any] | None
    disk_io: list[Any] | None
    network_traffic: list[Any] | None


def as_utc(value: datetime) -> datetime:
    """Naive datetimes are taken as UTC."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


class TimeRange(BaseModel):
    """A half-open time range [start, end); end defaults to now."""

    start: datetime | None = None
    end: datetime | None = None

    @model_validator(mode="after")
    def _ordered(self) -> "TimeRange":
        if self.start is None:
            if self.end is not None:
                raise ValueError("end needs a start")
            return self
        self.start = as_utc(self.start)
        self.end = as_utc(self.end) if self.end is not None else datetime.now(timezone.utc)
        if self.start >= self.end:
            raise ValueError(f"start ({self.start.isoformat()}) must be before end ({self.end.isoformat()})")
        return self


class MetricsQuery(TimeRange):
    """Query parameters of the metrics endpoint: a time range and a page of it."""

    model_config = ConfigDict(extra="forbid")

    page: int = Field(default=1, ge=1)
    page_size: int = Field(default=100, ge=1, le=5000)
