"""Response and request models. Shared event structs are wrapped, never redefined by hand."""

from __future__ import annotations

import math
import re
import types
import uuid
from datetime import datetime, timedelta, timezone
from functools import cache
from typing import Annotated, Any, Generic, Literal, TypeVar, Union, get_args, get_origin

import msgspec
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model, field_validator, model_validator
from pydantic.json_schema import JsonDict

from services.api.limits import COUNT_CAP, max_page
from shared.datatypes.system_metrics.payload import SystemMetrics
from shared.events import DeviceSpec
from shared.names import DEVICE_NAME_RE
from shared.runtime.devices import DeviceError, validate_address

T = TypeVar("T")

# A bucket width of 1m..1d: 60-86400 s, 1-1440 m, 1-24 h or 1 d (parse_bucket checks the same).
BUCKET_PATTERN = (r"^(?:(?:[6-9][0-9]|[1-9][0-9]{2,3}|[1-7][0-9]{4}|8[0-5][0-9]{3}|86[0-3][0-9]{2}|86400)s"
                  r"|(?:[1-9][0-9]{0,2}|1[0-3][0-9]{2}|14[0-3][0-9]|1440)m|(?:[1-9]|1[0-9]|2[0-4])h|1d)$")


def _pydantic_type(tp: Any) -> Any:
    """The pydantic-compatible form of a msgspec field type (nested Structs become models)."""
    origin = get_origin(tp)
    if origin is Annotated:
        return _pydantic_type(get_args(tp)[0])
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return model_of(tp)
    if origin in (Union, types.UnionType):
        return Union[tuple(_pydantic_type(a) for a in get_args(tp))]  # noqa: UP007 (of a computed tuple)
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
    total_capped: bool = Field(
        default=False, description=f"counting stopped {COUNT_CAP} rows past this page: there may be more")

    @classmethod
    def of(cls, items: list[Any], total_count: int, page: int, page_size: int) -> Page[Any]:
        return cls(
            items=items, total_count=total_count, page=page, page_size=page_size,
            total_pages=math.ceil(total_count / page_size) if page_size else 0,
            total_capped=total_count >= (page - 1) * page_size + COUNT_CAP,
        )


def kinds_pattern(kinds) -> str:
    """A comma-separated list of ``kinds`` (empty: all)."""
    one = "(?:" + "|".join(re.escape(k) for k in kinds) + ")"
    return f"^(?:{one}(?:,{one})*)?$"


def absent(extra: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    """A field that may be left out but never set to null: its default (None) is not documented."""

    def schema(s: dict[str, Any]) -> None:
        s.pop("default", None)
        s.update(extra or {})

    return Field(default=None, json_schema_extra=schema, **kwargs)


# A hostname (with a letter: all-digit names are IPv4 addresses) or an IP address; checked by validate_address.
_ADDRESS_SCHEMA: JsonDict = {"anyOf": [{"type": "string", "format": "ipv4"}, {"type": "string", "format": "ipv6"},
                             {"type": "string", "format": "hostname", "pattern": "[A-Za-z]", "maxLength": 253}]}


def _address(value: str | None) -> str | None:
    if value is None:
        return value
    try:
        return validate_address(value)
    except DeviceError as exc:
        raise ValueError(str(exc)) from None


class DeviceCreate(BaseModel):
    """A device to register; the server assigns its id."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=DEVICE_NAME_RE.pattern, description="1-63 letters, digits, '-' or '_'")
    address: str = Field(default="127.0.0.1", min_length=1, max_length=253, json_schema_extra=_ADDRESS_SCHEMA)
    port: int = Field(default=22, ge=1, le=65535)
    username: str | None = Field(default=None, max_length=64)
    transport: Literal["ssh", "local"] = "ssh"
    trust_on_first_use: bool = False
    device_type: str | None = Field(default=None, max_length=50)
    description: str | None = None
    tags: dict[str, str] = {}
    enabled: bool = True
    watch_paths: dict[str, list[str]] = Field(default={}, description="config type -> extra globs to watch")

    @field_validator("address")
    @classmethod
    def _valid_address(cls, value: str) -> str:
        return _address(value)  # type: ignore[return-value]

    def spec(self) -> DeviceSpec:
        return DeviceSpec(id=uuid.uuid4(), **self.model_dump())


class DeviceUpdate(BaseModel):
    """Fields to change; the name is immutable (it is the device's subject token)."""

    model_config = ConfigDict(extra="forbid")

    # Fields without null in their type may be left out but not set to null (None is only "absent").
    name: str = absent(description="immutable: only the current name is accepted (409 otherwise)")
    address: str = absent(_ADDRESS_SCHEMA, min_length=1, max_length=253)
    port: int = absent(ge=1, le=65535)
    username: str | None = Field(default=None, max_length=64)
    transport: Literal["ssh", "local"] = absent()
    trust_on_first_use: bool = absent()
    device_type: str | None = Field(default=None, max_length=50)
    description: str | None = None
    tags: dict[str, str] = absent()
    enabled: bool = absent()
    watch_paths: dict[str, list[str]] = absent()

    @field_validator("address")
    @classmethod
    def _valid_address(cls, value: str | None) -> str | None:
        return _address(value)

    def apply(self, spec: DeviceSpec) -> DeviceSpec:
        """``spec`` with the fields that were sent (explicit nulls clear nullable fields)."""
        return msgspec.structs.replace(spec, **self.model_dump(exclude_unset=True, exclude={"name"}))


class DeviceResponse(DeviceSpecModel):  # type: ignore[misc, valid-type]
    """A registered device and, per data type, its latest collection outcome."""

    status: Literal["enabled", "disabled"]
    last_successful_collection: dict[str, datetime] = {}
    last_collection_status: dict[str, str] = {}

    @classmethod
    def build(cls, spec: DeviceSpec, collections: dict[str, tuple[str | None, datetime | None]]) -> DeviceResponse:
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
    source: Literal["cache", "refresh"]


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


# RFC 3339, as the document's "date-time" format says: a full time and an offset (no epoch numbers).
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def _rfc3339(value: Any) -> Any:
    if isinstance(value, str) and not _RFC3339.match(value):
        raise ValueError("a date-time like 2024-05-01T12:00:00Z (RFC 3339, with an offset)")
    return value


DateTime = Annotated[datetime, BeforeValidator(_rfc3339)]


class TimeRange(BaseModel):
    """A half-open time range [start, end); end defaults to now; start >= end is an empty range."""

    start: DateTime | None = None
    end: DateTime | None = None

    @model_validator(mode="after")
    def _ordered(self) -> TimeRange:
        if self.start is None:
            if self.end is not None:
                raise ValueError("end needs a start")
            return self
        try:
            self.start = as_utc(self.start)
            self.end = as_utc(self.end) if self.end is not None else datetime.now(timezone.utc)
        except OverflowError:
            raise ValueError("time out of range") from None
        return self




class MetricsQuery(TimeRange):
    """Query parameters of the metrics endpoint: latest values, or a time range (paged or bucketed)."""

    model_config = ConfigDict(extra="forbid")

    page: int = Field(default=1, ge=1, le=max_page(5000))
    page_size: int = Field(default=100, ge=1, le=5000)
    bucket: str | None = Field(default=None, json_schema_extra={"pattern": BUCKET_PATTERN},
                               description="aggregate the range into buckets of 1m..1d, e.g. 5m")
    force_refresh: bool = Field(default=False, description="latest values only: collect now (operator)")

    @model_validator(mode="after")
    def _bucket(self) -> MetricsQuery:
        if self.bucket is not None:
            if self.start is None:
                raise ValueError("bucket needs a start")
            parse_bucket(self.bucket)
        if self.force_refresh and self.start is not None:
            raise ValueError("force_refresh applies to the latest values, not to a range")
        return self


class TimeFilter(BaseModel):
    """An optional time window [start, end) of a list; start >= end selects nothing."""

    start: DateTime | None = None
    end: DateTime | None = None

    @model_validator(mode="after")
    def _ordered(self) -> TimeFilter:
        try:
            self.start = as_utc(self.start) if self.start is not None else None
            self.end = as_utc(self.end) if self.end is not None else None
        except OverflowError:
            raise ValueError("time out of range") from None
        return self


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_BUCKET_RE = re.compile(r"^([1-9][0-9]{0,5})([smhd])$")
MIN_BUCKET_S, MAX_BUCKET_S = 60, 86400


def parse_bucket(value: str) -> timedelta:
    """``5m`` -> 5 minutes; between 1m and 1d, else ValueError naming the rule."""
    m = _BUCKET_RE.match(value)
    if m is None:
        raise ValueError(f"bucket {value!r} must be a number and a unit s, m, h or d, e.g. 5m")
    seconds = int(m.group(1)) * _UNITS[m.group(2)]
    if not MIN_BUCKET_S <= seconds <= MAX_BUCKET_S:
        raise ValueError(f"bucket {value!r} must be between 1m and 1d")
    return timedelta(seconds=seconds)


class MetricBucket(BaseModel):
    """System metrics aggregated over one time bucket."""

    bucket: datetime
    samples: int
    cpu_avg: float | None
    cpu_max: float | None
    memory_avg: float | None
    memory_max: float | None
    load_1_avg: float | None
    load_1_max: float | None


class MetricBuckets(BaseModel):
    """A time range of system metrics in buckets, oldest first."""

    device_id: uuid.UUID
    start: datetime
    end: datetime
    bucket: str
    function: Literal["time_bucket", "date_bin"]
    items: list[MetricBucket]


class CollectedData(BaseModel):
    """The latest collection of one data type on one device, as served."""

    device_id: uuid.UUID
    device: str
    data_type: str
    source: Literal["cache", "refresh"]
    age_seconds: float
    fresh: bool
    freshness_threshold_s: int
    occurred_at: datetime
    operation_id: uuid.UUID
    event_id: uuid.UUID
    status: str
    warnings: list[str]
    payload: dict[str, Any] | None
