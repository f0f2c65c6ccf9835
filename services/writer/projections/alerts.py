"""alert_events and alert_notifications: one row per AlertChanged and per NotificationAttempted."""

from __future__ import annotations

from schema.models import AlertEvent, AlertNotification
from services.writer.registry import ProjectionError, TableRows, from_fields, projector, table
from shared.alert_events import AlertChanged, NotificationAttempted

table(AlertEvent)
table(AlertNotification)


@projector(AlertChanged)
def alert_changed(ev: AlertChanged, seq: int) -> TableRows:
    if ev.device_id is None:
        raise ProjectionError("alert event without device_id")
    causes = ev.causes if ev.state == "fired" else None
    return {"alert_events": [from_fields("alert_events", ev, time=ev.occurred_at, rule_name=ev.rule, causes=causes)]}


@projector(NotificationAttempted)
def notification(ev: NotificationAttempted, seq: int) -> TableRows:
    if ev.device_id is None:
        raise ProjectionError("notification event without device_id")
    status = "delivered" if ev.delivered else "failed"
    return {"alert_notifications": [from_fields("alert_notifications", ev, time=ev.occurred_at, status=status)]}
