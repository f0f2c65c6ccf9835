"""The event contract: msgspec Structs in one tagged union, JSON on the wire.

Rules for evolving it: a new field gets a default; an existing field's type never changes;
a new event type is a new tag. ``schema_version`` is bumped only for incompatible changes.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Annotated, Any, ClassVar, Literal, TypeVar, Union

import msgspec

from shared.payloads.system_metrics import SystemMetrics

SCHEMA_VERSION = 1

Trigger = Literal["poll", "api", "refresh", "watch", "scan"]
Status = Literal["success", "partial", "error", "unsupported"]
UtcDatetime = Annotated[datetime, msgspec.Meta(tz=True)]


class Event(msgspec.Struct, kw_only=True, tag_field="kind"):
    """The envelope every event carries."""

    schema_version: int = SCHEMA_VERSION
    event_id: uuid.UUID
    operation_id: uuid.UUID
    device_id: uuid.UUID | None = None
    device: str | None = None
    occurred_at: UtcDatetime
    service: str
    instance: str
    trigger: Trigger
    status: Status = "success"
    duration_ms: float = 0.0
    ssh_command_count: int = 0
    data_size_bytes: int = 0
    error: str | None = None
    warnings: list[str] = []


# ---------------------------------------------------------------- collected


class Collected(Event, kw_only=True):
    """One collection operation on one device and its result."""

    data_type: ClassVar[str]
    collection_method: Literal["ssh", "local"] = "ssh"
    force_refresh: bool = False
    freshness_threshold_s: int | None = None


class SystemMetricsCollected(Collected, kw_only=True, tag="collected.system_metrics"):
    data_type: ClassVar[str] = "system_metrics"
    payload: SystemMetrics | None = None


# ---------------------------------------------------------------- devices


class DeviceSpec(msgspec.Struct, kw_only=True):
    """A device as registered: where it is and how to reach it. No secrets."""

    id: uuid.UUID
    name: str
    address: str = "127.0.0.1"
    port: int = 22
    username: str | None = None
    transport: Literal["ssh", "local"] = "ssh"
    trust_on_first_use: bool = False
    device_type: str | None = None
    description: str | None = None
    tags: dict[str, str] = {}
    enabled: bool = True


class DeviceChanged(Event, kw_only=True, tag="device"):
    action: Literal["registered", "updated", "removed"]
    spec: DeviceSpec


# ---------------------------------------------------------------- audit, refresh


class Audited(Event, kw_only=True, tag="audit"):
    """An operation that collects nothing itself: a cache hit, a refusal, a read."""

    action: str
    data_type: str | None = None
    cache_hit: bool = False
    force_refresh: bool = False
    detail: dict[str, Any] = {}


class RefreshRequested(Event, kw_only=True, tag="refresh"):
    """Please collect ``data_type`` on this device now, under ``operation_id``."""

    data_type: str
    requested_by: str | None = None


AnyEvent = Union[SystemMetricsCollected, DeviceChanged, Audited, RefreshRequested]
COLLECTED_TYPES: dict[str, type[Collected]] = {
    cls.data_type: cls for cls in (SystemMetricsCollected,)
}

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(AnyEvent)

E = TypeVar("E", bound=Event)


def encode(event: Event) -> bytes:
    return _encoder.encode(event)


def decode(data: bytes) -> AnyEvent:
    """Decode one event; raises msgspec.DecodeError / ValidationError with the reason."""
    return _decoder.decode(data)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def new_event(cls: type[E], **fields: Any) -> E:
    """Build an event with a fresh event_id, occurred_at now and operation_id defaulting to it."""
    event_id = fields.pop("event_id", None) or uuid.uuid4()
    fields.setdefault("operation_id", event_id)
    fields.setdefault("occurred_at", utcnow())
    return cls(event_id=event_id, **fields)


def tag_of(cls: type[Event]) -> str:
    return cls.__struct_config__.tag  # type: ignore[return-value]
