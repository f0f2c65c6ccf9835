"""alert_events and alert_notifications: one row per AlertChanged and per NotificationAttempted
(a policy's webhook outcomes too); ConfigViolation events project to nothing."""

from __future__ import annotations

from schema.models import AlertEvent, AlertNotification
from services.writer.registry import ProjectionError, TableRows, from_fields, projector, table
from shared.alert_events import AlertChanged, NotificationAttempted
from shared.policy_events import ConfigViolation

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


@projector(ConfigViolation)
def config_violation(ev: ConfigViolation, seq: int) -> TableRows:
    """Nothing: the policy evaluator records a violation in ``config_violations`` in the transaction
    that decides it, before the event is published."""
    return {}
