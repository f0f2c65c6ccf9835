"""alert_events and alert_notifications: one row per AlertChanged and per NotificationAttempted."""

from __future__ import annotations

from schema.models import AlertEvent, AlertNotification
from services.writer.registry import ProjectionError, TableRows, projector, table
from shared.alert_events import AlertChanged, NotificationAttempted

table(AlertEvent)
table(AlertNotification)


@projector(AlertChanged)
def alert_changed(ev: AlertChanged, seq: int) -> TableRows:
    if ev.device_id is None:
        raise ProjectionError("alert event without device_id")
    return {"alert_events": [{
        "time": ev.occurred_at, "event_id": ev.event_id, "rule_id": ev.rule_id, "rule_name": ev.rule,
        "device_id": ev.device_id, "metric": ev.metric, "state": ev.state, "value": ev.value,
        "threshold": ev.threshold, "operator": ev.operator, "since": ev.since, "refire": ev.refire,
        "detail": ev.detail, "message": ev.message,
    }]}


@projector(NotificationAttempted)
def notification(ev: NotificationAttempted, seq: int) -> TableRows:
    if ev.device_id is None:
        raise ProjectionError("notification event without device_id")
    return {"alert_notifications": [{
        "time": ev.occurred_at, "event_id": ev.event_id, "alert_event_id": ev.alert_event_id, "rule_id": ev.rule_id,
        "device_id": ev.device_id, "url": ev.url, "format": ev.format, "attempts": ev.attempts,
        "status": "delivered" if ev.delivered else "failed", "http_status": ev.http_status,
        "last_error": ev.last_error,
    }]}
