"""The event contract: every event type in one msgspec tagged union, JSON on the wire.

The envelope is in ``shared.envelope``; collected events in ``shared.collected``. This module
assembles the union and holds the one encoder and the one decoder every service uses.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal, TypeVar, Union

import msgspec

from shared.alert_events import ALERT_EVENTS
from shared.collected import COLLECTED_EVENTS, COLLECTED_TYPES
from shared.config_events import CONFIG_EVENTS
from shared.envelope import SCHEMA_VERSION, Collected, Event, Status, Trigger, UtcDatetime
from shared.policy_events import POLICY_EVENTS

__all__ = [
    "SCHEMA_VERSION", "Event", "Collected", "Status", "Trigger", "UtcDatetime",
    "DeviceSpec", "DeviceChanged", "Audited", "RefreshRequested", "PerfReported", "AnyEvent", "COLLECTED_TYPES",
    "encode", "decode", "new_event", "utcnow", "tag_of",
]


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
    watch_paths: dict[str, list[str]] = {}  # config_type -> extra globs, added to the defaults
    # Command prefix for commands that need privileges (smartctl), e.g. ["sudo", "-n"];
    # None: the collector's INFRAWATCH_COLLECTOR_SUDO setting applies.
    sudo: list[str] | None = None


class DeviceChanged(Event, kw_only=True, tag="device"):
    action: Literal["registered", "updated", "removed"]
    spec: DeviceSpec


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


class PerfReported(Event, kw_only=True, tag="perf"):
    """A service's performance counters over the last window (fields follow service_performance_metrics)."""

    window_s: float
    operations_total: int = 0
    operations_successful: int = 0
    operations_failed: int = 0
    operations_cached: int = 0
    avg_duration_ms: float | None = None
    min_duration_ms: float | None = None
    max_duration_ms: float | None = None
    ssh_connections_created: int = 0
    ssh_connections_reused: int = 0
    ssh_commands_executed: int = 0
    cache_hit_ratio: float | None = None
    cache_size_entries: int | None = None
    cache_evictions: int = 0
    data_collected_bytes: int = 0
    database_writes: int = 0
    error_types: dict[str, int] = {}
    gauges: dict[str, float] = {}  # service-specific levels, e.g. the writer's consumer lag


OTHER_EVENTS: tuple[type[Event], ...] = (DeviceChanged, Audited, RefreshRequested, PerfReported)
if TYPE_CHECKING:
    AnyEvent = Event  # the type checker sees the base class; the union is computed at run time
else:
    AnyEvent = Union[COLLECTED_EVENTS + OTHER_EVENTS + CONFIG_EVENTS + ALERT_EVENTS + POLICY_EVENTS]  # noqa: UP007 (of a computed tuple)

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(AnyEvent)

E = TypeVar("E", bound=Event)


def encode(event: Event) -> bytes:
    return _encoder.encode(event)


def decode(data: bytes) -> Event:
    """Decode one event; raises msgspec.DecodeError / ValidationError with the reason."""
    event: Event = _decoder.decode(data)
    return event


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
