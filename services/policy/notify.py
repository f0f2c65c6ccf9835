"""Webhook bodies of a violation (pure): ``json`` posts the ``ConfigViolation`` event as it is on
the wire; ``ntfy`` posts its message as text with Title/Priority/Tags headers; ``slack`` posts
an incoming-webhook body. Delivery, retries and the refusal of private targets are the alert
notifier's (``services.alerts.notify.deliver``)."""

from __future__ import annotations

from urllib.parse import quote

import msgspec

from services.alerts.notify import Request
from shared import events
from shared.alert_events import WebhookFormat
from shared.policy_events import ConfigViolation

PRIORITY = {"critical": "urgent", "high": "high", "medium": "default", "low": "low", "info": "min"}


def _change(v: ConfigViolation) -> str:
    ref = v.fixed_by if v.state == "resolved" and v.fixed_by else v.introduced_by
    verb = "fixed by" if v.state == "resolved" else "introduced by"
    if v.state == "resolved" and v.fixed_by is None:
        return f"resolved: the policy no longer applies ({v.resolution})"
    return f"{verb} the {ref.change_type} of {ref.time.isoformat()} (snapshot {ref.snapshot_id})"


def diff_link(v: ConfigViolation, dashboard_url: str | None) -> str | None:
    """The API route of the introducing (or fixing) version's diff, when the public URL is known."""
    ref = v.fixed_by if v.state == "resolved" and v.fixed_by else v.introduced_by
    if not dashboard_url or v.device_id is None:
        return None
    return (f"{dashboard_url.rstrip('/')}/devices/{quote(str(v.device_id))}/config/snapshots/"
            f"{quote(str(ref.snapshot_id))}/diff")


def request(v: ConfigViolation, fmt: WebhookFormat, dashboard_url: str | None = None) -> Request:
    fired = v.state == "fired"
    link = diff_link(v, dashboard_url)
    if fmt == "ntfy":
        headers = {
            "Content-Type": "text/plain; charset=utf-8",
            "Title": f"{v.policy} {v.state} on {v.device}",
            "Priority": PRIORITY.get(v.severity, "default") if fired else "default",
            "Tags": "warning" if fired else "white_check_mark",
        }
        text = f"{v.message}\n{_change(v)}"
        return Request(text.encode(), headers | ({"Click": link} if link else {}))
    if fmt == "slack":
        body = {
            "text": f"{':warning:' if fired else ':white_check_mark:'} {v.message}\n{_change(v)}"
                    + (f"\n<{link}|diff>" if link else ""),
            "attachments": [{
                "color": "danger" if fired and v.severity in ("critical", "high") else "warning" if fired else "good",
                "fields": [
                    {"title": "device", "value": v.device or str(v.device_id), "short": True},
                    {"title": "policy", "value": v.policy, "short": True},
                    {"title": "severity", "value": v.severity, "short": True},
                    {"title": "file", "value": v.path, "short": False},
                ],
                "ts": int(v.occurred_at.timestamp()),
            }],
        }
        return Request(msgspec.json.encode(body), {"Content-Type": "application/json"})
    return Request(events.encode(v), {"Content-Type": "application/json"})
