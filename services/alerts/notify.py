"""Webhook notifications: the request of each format (pure), and delivery with retries.

Formats: ``json`` posts the ``AlertChanged`` event as it is on the wire (its ``causes`` too);
``ntfy`` posts the message and one line per cause as text to a topic URL with ntfy's
Title/Priority/Tags (and Click, to the dashboard) headers; ``slack`` posts an
incoming-webhook body (``text`` plus one coloured attachment), which Mattermost and Rocket.Chat
accept too. A webhook URL may carry a token in its path, query or user info, so only
``redact_url(url)`` (scheme, host and port) is ever logged or recorded. Each attempt first
resolves the host and refuses loopback, link-local and private targets (``targets``) unless they
are allowed, then sends to the checked address.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from urllib.parse import quote

import httpx
import msgspec

from services.alerts import targets
from shared import events
from shared.alert_events import AlertChanged, Cause, WebhookFormat, redact_url

log = logging.getLogger(__name__)

RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class Request(msgspec.Struct, frozen=True):
    content: bytes
    headers: dict[str, str]


class Outcome(msgspec.Struct, kw_only=True):
    delivered: bool
    attempts: int
    http_status: int | None = None
    last_error: str | None = None


def _ago(cause: Cause, at: datetime) -> str:
    minutes = int((at - cause.time).total_seconds() // 60)
    return f"{minutes} min before" if minutes >= 1 else "under a minute before"


def cause_lines(alert: AlertChanged) -> list[str]:
    """One readable line per cause, e.g. ``• 12 min before: nginx /etc/nginx/app.conf MODIFY: 2 changed (HIGH)``."""
    out = []
    for c in alert.causes:
        risk = f" ({c.risk})" if c.risk and not c.summary.endswith(f"({c.risk})") else ""
        out.append(f"• {_ago(c, alert.occurred_at)}: {c.summary}{risk}")
    return out


def dashboard_link(alert: AlertChanged, dashboard_url: str | None) -> str | None:
    """The device's page on the dashboard, when its public URL is known."""
    if not dashboard_url:
        return None
    return f"{dashboard_url.rstrip('/')}/dashboard/#/devices/{quote(alert.device or str(alert.device_id))}"


def request(alert: AlertChanged, fmt: WebhookFormat, dashboard_url: str | None = None) -> Request:
    """The body and headers of the webhook POST for ``alert`` in format ``fmt``; ntfy and slack
    list the alert's causes, and link to the device on the dashboard when ``dashboard_url`` is set."""
    fired = alert.state == "fired"
    lines = cause_lines(alert)
    link = dashboard_link(alert, dashboard_url)
    if fmt == "ntfy":
        text = "\n".join([alert.message, *(["", "Likely causes:", *lines] if lines else [])])
        headers = {
            "Content-Type": "text/plain; charset=utf-8",
            "Title": f"{alert.rule} {alert.state} on {alert.device}",
            "Priority": "high" if fired else "default",
            "Tags": "rotating_light" if fired else "white_check_mark",
        }
        return Request(text.encode(), headers | ({"Click": link} if link else {}))
    if fmt == "slack":
        text = "\n".join([f"{':rotating_light:' if fired else ':white_check_mark:'} {alert.message}",
                          *(["Likely causes:", *lines] if lines else []), *([f"<{link}|{alert.device}>"] if link else [])])
        body = {
            "text": text,
            "attachments": [{
                "color": "danger" if fired else "good",
                "fields": [
                    {"title": "device", "value": alert.device or str(alert.device_id), "short": True},
                    {"title": "rule", "value": alert.rule, "short": True},
                    {"title": "value", "value": f"{alert.value:g}", "short": True},
                    {"title": "threshold", "value": f"{alert.operator} {alert.threshold:g}", "short": True},
                    {"title": "since", "value": alert.since.isoformat(), "short": False},
                ],
                "ts": int(alert.occurred_at.timestamp()),
            }],
        }
        return Request(msgspec.json.encode(body), {"Content-Type": "application/json"})
    return Request(events.encode(alert), {"Content-Type": "application/json"})


def _error(exc: Exception, *urls: str) -> str:
    text = f"{type(exc).__name__}: {exc}"
    for url in urls:
        text = text.replace(url, redact_url(url))
    return " ".join(text.split())[:500] or type(exc).__name__


async def _post(client: httpx.AsyncClient, url: str, req: Request, timeout_s: float,
                allow_private: bool) -> httpx.Response:
    """POST ``req`` to the first checked address of ``url``'s host; TargetRefused if it is not allowed."""
    ip = (await targets.check(url, allow_private))[0]
    target, host, extensions = targets.pinned(url, ip)
    try:
        return await client.post(target, content=req.content, headers={**req.headers, **host}, timeout=timeout_s,
                                 extensions=extensions)
    except httpx.HTTPError as exc:
        raise httpx.TransportError(_error(exc, target, url)) from None


async def deliver(client: httpx.AsyncClient, url: str, req: Request, attempts: int, timeout_s: float,
                  backoff_s: float, backoff_max_s: float, allow_private: bool = False) -> Outcome:
    """POST until a 2xx answer or ``attempts`` are used; waits ``backoff_s``, doubling, between attempts.

    A 4xx other than 408/425/429 is not retried: the same request would be refused again, nor is a
    target outside the allowed address ranges (``allow_private`` admits loopback and private ones).
    """
    delay = backoff_s
    status: int | None = None
    error: str | None = None
    for attempt in range(1, attempts + 1):
        try:
            r = await _post(client, url, req, timeout_s, allow_private)
            status = r.status_code
            if r.is_success:
                return Outcome(delivered=True, attempts=attempt, http_status=status)
            error = f"HTTP {status}"
            if status not in RETRY_STATUS and status < 500:
                return Outcome(delivered=False, attempts=attempt, http_status=status, last_error=error)
        except targets.Unresolvable as exc:
            status, error = None, str(exc)
        except targets.TargetRefused as exc:
            log.warning("webhook %s refused: %s", redact_url(url), exc)
            return Outcome(delivered=False, attempts=attempt, last_error=f"refused: {exc}")
        except httpx.HTTPError as exc:
            status, error = None, _error(exc, url)
        if attempt < attempts:
            log.info("webhook %s attempt %d failed (%s); retrying in %.2fs", redact_url(url), attempt, error, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, backoff_max_s)
    return Outcome(delivered=False, attempts=attempts, http_status=status, last_error=error)
