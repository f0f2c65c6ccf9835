"""alert_events and alert_notifications: one row per AlertChanged and per NotificationAttempted."""

from __future__ import annotations

from services.writer.projection import ProjectionError, Rows, projector, table
from shared.alert_events import AlertChanged, NotificationAttempted

table("alert_events", (
    "time", "event_id", "rule_id", "rule_name", "device_id", "metric", "state", "value", "threshold", "operator",
    "since", "refire", "detail", "message",
))
table("alert_notifications", (
    "time", "event_id", "alert_event_id", "rule_id", "device_id", "url", "format", "attempts", "status",
    "http_status", "last_error",
))


@projector(AlertChanged)
def alert_changed(ev: AlertChanged, seq: int) -> Rows:
    if ev.device_id is None:
        raise ProjectionError("alert event without device_id")
    return {"alert_events": [(
        ev.occurred_at, ev.event_id, ev.rule_id, ev.rule, ev.device_id, ev.metric, ev.state, ev.value, ev.threshold,
        ev.operator, ev.since, ev.refire, ev.detail, ev.message,
    )]}


@projector(NotificationAttempted)
def notification(ev: NotificationAttempted, seq: int) -> Rows:
    if ev.device_id is None:
        raise ProjectionError("notification event without device_id")
    return {"alert_notifications": [(
        ev.occurred_at, ev.event_id, ev.alert_event_id, ev.rule_id, ev.device_id, ev.url, ev.format, ev.attempts,
        "delivered" if ev.delivered else "failed", ev.http_status, ev.last_error,
    )]}
