"""The envelope every event carries, and the base class of collected events.

Rules for evolving events: a new field gets a default; an existing field's type never changes;
a new event type is a new tag. ``schema_version`` is bumped only for incompatible changes.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

import msgspec

SCHEMA_VERSION = 1

Trigger = Literal["poll", "api", "refresh", "watch", "scan"]
Status = Literal["success", "partial", "error", "unsupported"]
UtcDatetime = Annotated[datetime, msgspec.Meta(tz=True)]
# A name that is part of a table's key (an instance, a container id, a drive, an interface, a
# pool): bounded, because an index entry is (a B-tree entry holds about 2.7 KB).
KeyName = Annotated[str, msgspec.Meta(max_length=255)]


class Event(msgspec.Struct, kw_only=True, tag_field="kind"):
    """The envelope every event carries."""

    schema_version: int = SCHEMA_VERSION
    event_id: uuid.UUID
    operation_id: uuid.UUID
    device_id: uuid.UUID | None = None
    device: str | None = None
    occurred_at: UtcDatetime
    service: KeyName
    instance: KeyName
    trigger: Trigger
    status: Status = "success"
    duration_ms: float = 0.0
    ssh_command_count: int = 0
    data_size_bytes: int = 0
    error: str | None = None
    warnings: list[str] = []


class Collected(Event, kw_only=True):
    """One collection operation on one device and its result (``payload`` on success)."""

    data_type: ClassVar[str]
    collection_method: Literal["ssh", "local"] = "ssh"
    force_refresh: bool = False
    freshness_threshold_s: int | None = None
    # A poll that found a fresh cached value and collected nothing: status "success", no payload.
    skipped_fresh: bool = False
    # A refresh coalesced with another collection of the same device and type: the operation
    # whose commands produced this event's payload (this event ran no command itself).
    served_by: uuid.UUID | None = None

    if TYPE_CHECKING:
        payload: Any = None  # declared by each data type's event class (shared.datatypes.spec)
