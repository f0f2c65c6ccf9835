"""The event contract: JSON round trips, tags, envelope defaults and evolution rules."""

import uuid

import msgspec
import pytest

from shared import events
from shared.collected import COLLECTED_TYPES
from shared.datatypes.system_metrics.payload import SystemMetrics
from shared.events import DeviceChanged, DeviceSpec


def _metrics() -> SystemMetrics:
    return SystemMetrics(cpu_percent=12.5, cpu_count=2, memory_total_bytes=100, memory_available_bytes=40,
                         memory_used_bytes=60, memory_percent=60.0, load_1=0.1, load_5=0.2, load_15=0.3,
                         uptime_seconds=10.0)


def test_collected_event_round_trips_as_json_with_its_tag():
    ev = events.new_event(COLLECTED_TYPES["system_metrics"], device_id=uuid.uuid4(), device="web1", service="collector",
                          instance="c1", trigger="poll", payload=_metrics())
    data = events.encode(ev)
    assert b'"kind":"collected.system_metrics"' in data
    back = events.decode(data)
    assert back == ev
    assert back.operation_id == back.event_id
    assert back.occurred_at.tzinfo is not None


def test_unknown_fields_are_ignored_so_newer_producers_do_not_break_older_consumers():
    ev = events.new_event(DeviceChanged, action="registered", spec=DeviceSpec(id=uuid.uuid4(), name="a"),
                          service="api", instance="x", trigger="api")
    raw = msgspec.json.decode(events.encode(ev))
    raw["a_field_from_the_future"] = 1
    assert events.decode(msgspec.json.encode(raw)) == ev


@pytest.mark.parametrize("mutate, reason", [
    (lambda r: r.update(kind="nope"), "Invalid value 'nope'"),
    (lambda r: r.update(occurred_at="2024-01-01T00:00:00"), "timezone"),
    (lambda r: r.pop("event_id"), "missing required field `event_id`"),
    (lambda r: r.update(status="fine"), "Invalid enum value 'fine'"),
])
def test_invalid_events_raise_with_a_reason(mutate, reason):
    ev = events.new_event(COLLECTED_TYPES["system_metrics"], device_id=uuid.uuid4(), device="d", service="collector",
                          instance="c", trigger="poll")
    raw = msgspec.json.decode(events.encode(ev))
    mutate(raw)
    with pytest.raises(msgspec.ValidationError, match=reason):
        events.decode(msgspec.json.encode(raw))


def test_garbage_bytes_raise_decode_error():
    with pytest.raises(msgspec.DecodeError):
        events.decode(b"\x00not json")


def test_registry_of_collected_types_maps_data_type_to_event_class():
    assert events.COLLECTED_TYPES["system_metrics"] is COLLECTED_TYPES["system_metrics"]
    assert events.tag_of(COLLECTED_TYPES["system_metrics"]) == "collected.system_metrics"
