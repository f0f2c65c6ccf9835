"""Models of the data-type reads: latest payloads, stored rows over time and their query parameters."""

from __future__ import annotations

import uuid
from datetime import datetime
from functools import cache
from types import UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints

import msgspec
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    create_model,
    field_validator,
    model_validator,
)
from sqlalchemy import JSON

from schema.base import Base
from services.api.limits import max_page
from services.api.schemas import (
    BUCKET_PATTERN,
    CollectedData,
    TimeFilter,
    model_of,
    parse_bucket,
)
from shared.datatypes.spec import Api


@cache
def collected_model(payload: type[msgspec.Struct]) -> type[CollectedData]:
    """``CollectedData`` with the payload typed as ``payload`` (for the OpenAPI document)."""
    return create_model(f"{payload.__name__}Data", __base__=CollectedData,
                        payload=(model_of(payload) | None, None))  # type: ignore[arg-type]  # a model built at run time


class HistoryQuery(TimeFilter):
    """Stored rows in an optional window [start, end), oldest first, paged."""

    model_config = ConfigDict(extra="forbid")

    page: int = Field(default=1, ge=1, le=max_page(5000))
    page_size: int = Field(default=100, ge=1, le=5000)


@cache
def history_query(api: Api) -> type[HistoryQuery]:
    """``HistoryQuery`` with an optional filter on the type's history key, when it has one."""
    if api.key is None:
        return HistoryQuery
    key = Field(default=None, min_length=1, max_length=api.key_max_length, description=api.key_doc or f"one {api.key}")
    name = api.path.title().replace("_", "") + "HistoryQuery"
    return create_model(name, __base__=HistoryQuery, **{api.key: (str | None, key)})  # type: ignore[call-overload]


def _json_type(table: type[Base], attr: str) -> Any:
    """What a JSON column holds, from its ``Mapped[...]`` annotation (``list[Any]``, ``dict[str, Any]``), else Any."""
    try:
        (held,) = get_args(get_type_hints(table)[attr])
    except (KeyError, NameError, TypeError, ValueError):
        return Any
    if get_origin(held) in (Union, UnionType):
        held = Union[tuple(a for a in get_args(held) if a is not type(None))]  # noqa: UP007
    return held


@cache
def row_model(table: type[Base], columns: tuple[str, ...] | None = None, name: str | None = None) -> type[BaseModel]:
    """A pydantic model of a table's rows: its columns (all, or ``columns``) in table order, each typed as the
    column's Python type and nullable as the column is; read from the ORM objects' attributes."""
    fields: dict[str, Any] = {}
    for attr, column in table.__mapper__.columns.items():
        if columns is not None and column.name not in columns:
            continue
        held = _json_type(table, attr) if isinstance(column.type, JSON) else column.type.python_type
        fields[attr] = (held | None if column.nullable else held, Field(description=column.comment))
    return create_model(name or table.__name__.removesuffix("Row") + "Row", __config__=ConfigDict(from_attributes=True),
                        __doc__=table.__doc__, **fields)


class ColumnInfo(BaseModel):
    name: str
    type: str = Field(description="the column's SQL type, e.g. bigint, text, jsonb")
    nullable: bool


class DataTypeInfo(BaseModel):
    """A collected data type as the API serves it."""

    name: str
    doc: str
    path: str = Field(description="the reads' path under /devices/{device}/")
    latest: bool = Field(description="GET /devices/{device}/{path} serves the latest payload")
    history: bool = Field(description="GET /devices/{device}/{path}/history serves the stored rows")
    key: str | None = Field(description="the history's filter parameter (a key column), if any")
    table: str = Field(description="the table its history reads")
    columns: list[ColumnInfo]


class DriveHistoryQuery(HistoryQuery):
    """A drive's rows, or with ``bucket`` their aggregates per bucket (``start`` needed, ``end`` defaults to now)."""

    bucket: str | None = Field(default=None, json_schema_extra={"pattern": BUCKET_PATTERN},
                               description="aggregate into buckets of 1m..1d, e.g. 1h")

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
