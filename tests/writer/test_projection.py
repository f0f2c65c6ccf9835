"""The pure projection of events into rows."""

import uuid

import pytest

from services.writer.projection import ProjectionError, rows
from services.writer.registry import COLUMNS
from shared import events
from shared.events import DeviceChanged, RefreshRequested
from tests.factories import device_event, metrics_event


def test_successful_collection_projects_one_metric_row_and_one_audit_row():
    ev = metrics_event(uuid.uuid4())
    out = rows(ev)
    assert len(out["system_metrics"]) == 1 and len(out["data_collection_audit"]) == 1
    metric = dict(zip(COLUMNS["system_metrics"], out["system_metrics"][0]))
    assert metric["time"] == ev.occurred_at and metric["cpu_usage"] == 12.5 and metric["event_id"] == ev.event_id
    audit = dict(zip(COLUMNS["data_collection_audit"], out["data_collection_audit"][0]))
    assert audit["status"] == "success" and audit["records_created"] == 1 and audit["trigger"] == "poll"
    assert audit["operation_id"] == ev.operation_id


def test_failed_collection_projects_only_an_audit_row_with_the_error():
    out = rows(metrics_event(uuid.uuid4(), status="error"))
    assert "system_metrics" not in out
    audit = dict(zip(COLUMNS["data_collection_audit"], out["data_collection_audit"][0]))
    assert audit["status"] == "error" and audit["error_message"] == "boom" and audit["records_created"] == 0


def test_projection_is_deterministic_so_redelivery_gives_identical_rows():
    ev = metrics_event(uuid.uuid4())
    assert rows(ev) == rows(events.decode(events.encode(ev)))


def test_device_removal_sets_deleted_at_and_carries_the_stream_sequence():
    reg = device_event("web1")
    gone = events.new_event(DeviceChanged, action="removed", spec=reg.spec, service="api", instance="t",
                            trigger="api")
    row = dict(zip(COLUMNS["devices"], rows(gone, stream_seq=7)["devices"][0]))
    assert row["deleted_at"] == gone.occurred_at and row["stream_seq"] == 7 and row["name"] == "web1"
    assert dict(zip(COLUMNS["devices"], rows(reg, 3)["devices"][0]))["deleted_at"] is None


def test_collected_event_without_device_is_refused():
    with pytest.raises(ProjectionError):
        rows(metrics_event(None))


def test_refresh_requests_project_nothing():
    ev = events.new_event(RefreshRequested, data_type="system_metrics", service="api", instance="t",
                          trigger="api", device="d")
    assert dict(rows(ev)) == {}
