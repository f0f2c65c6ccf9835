"""Alert rules as the evaluator sees them, and the alert events: ``AlertChanged`` (tag ``alert``,
fired or resolved, on ``<prefix>.alert.<device>.<rule>``) and ``NotificationAttempted`` (tag
``alert_notification``, one webhook delivery outcome, on ``<prefix>.alert.<device>.<rule>.notify``).
"""

from __future__ import annotations

import uuid
from typing import Any, Literal, get_args
from urllib.parse import urlsplit

import msgspec

from shared.envelope import Event, UtcDatetime

Metric = Literal[
    "cpu", "memory", "disk", "load", "drive_temperature", "drive_failing", "container_state", "container_health",
    "container_restarts", "systemd_failed", "zfs_pool_not_online", "collection_failures", "config_risk",
    "no_data",
]
Operator = Literal[">", ">=", "<", "<=", "==", "!="]
WebhookFormat = Literal["json", "ntfy", "slack"]
AlertState = Literal["fired", "resolved"]
METRICS: tuple[str, ...] = get_args(Metric)
OPERATORS: tuple[str, ...] = get_args(Operator)
# config_risk thresholds are these ranks ("HIGH or higher" is ``>= 3``).
RISK_RANK = {"LOW": 1, "MEDIUM": 2, "HIGH": 3, "CRITICAL": 4}


class AlertRule(msgspec.Struct, kw_only=True):
    """One rule, as stored in the ``alert_rules`` table and mirrored to the rules KV bucket.

    ``selector`` narrows a metric to a mount, drive, container, unit, pool, data type or config
    type (a glob; None means the metric's default, see docs/alerts.md).
    """

    id: uuid.UUID
    name: str
    device_id: uuid.UUID | None = None  # None: every device
    metric: Metric
    selector: str | None = None
    operator: Operator = ">"
    threshold: float = 0.0
    duration_s: int = 0
    refire_interval_s: int = 3600
    enabled: bool = True
    webhook_url: str | None = None  # may hold a token: never logged, never put in an event
    webhook_format: WebhookFormat = "json"
    updated_at: UtcDatetime | None = None
    cause_window_s: int = 1800  # how far back a fired alert looks for its likely causes
    cause_top: int = 5  # how many causes it keeps


class Cause(msgspec.Struct, kw_only=True):
    """A likely cause of a fired alert: something that changed on its device shortly before.

    ``kind`` is config, container, package, unit, alert or collection; ``ref`` the id of the event
    it was read from; ``score`` its rank (higher is likelier) and ``reasons`` why.
    """

    time: UtcDatetime
    kind: str
    subject: str
    summary: str
    risk: str | None = None
    ref: str = ""
    score: float = 0.0
    reasons: list[str] = []
    detail: dict[str, Any] = {}


class AlertChanged(Event, kw_only=True, tag="alert"):
    """A rule fired (its condition held for ``duration_s``) or resolved (the condition cleared) on a device.

    ``occurred_at`` is the time of the event that caused it; ``since`` is when the condition
    started to hold; ``refire`` marks a repeated ``fired`` of an alert that never resolved.
    """

    rule_id: uuid.UUID
    rule: str
    metric: Metric
    selector: str | None = None
    operator: Operator
    state: AlertState
    value: float
    threshold: float
    duration_s: int = 0
    since: UtcDatetime
    refire: bool = False
    detail: str = ""  # what the value is of, e.g. "mount /data" or "containers: web, db"
    message: str = ""
    source_event_id: uuid.UUID | None = None
    causes: list[Cause] = []  # on "fired" only: the likeliest causes, likeliest first


class NotificationAttempted(Event, kw_only=True, tag="alert_notification"):
    """The outcome of delivering one alert to its rule's webhook, after all attempts.

    ``url`` is redacted to scheme, host and port: webhook paths and queries often hold tokens.
    """

    alert_event_id: uuid.UUID
    rule_id: uuid.UUID
    rule: str
    alert_state: AlertState
    url: str
    format: WebhookFormat
    attempts: int
    delivered: bool
    http_status: int | None = None
    last_error: str | None = None


def redact_url(url: str) -> str:
    """``scheme://host[:port]`` and ``/…`` when there was more: no user info, path or query."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid url>"
    rest = "/…" if (parts.path not in ("", "/") or parts.query or parts.fragment) else ""
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}{port}{rest}"


ALERT_EVENTS: tuple[type[Event], ...] = (AlertChanged, NotificationAttempted)
