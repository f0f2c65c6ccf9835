"""Webhooks: a local receiver gets each format; a failing webhook is retried, then recorded as failed."""

from __future__ import annotations

import json
import logging
import uuid

import msgspec

from services.alerts import notify
from shared import events
from shared.alert_events import AlertChanged, Cause
from shared.names import Names
from shared.runtime.embedded import free_port
from shared.runtime.publish import publish_event
from tests.alerts.conftest import alerts, notifications, put_rule
from tests.alerts.receiver import Receiver
from tests.factories import at, cpu, rule
from tests.util import fetch, wait_until


async def _rows(settings, table: str, n: int):
    rows = await fetch(settings.database_url, f"SELECT * FROM {table} ORDER BY time")
    return rows if len(rows) >= n else None


async def _count(rx: Receiver, n: int) -> bool:
    return len(rx.requests) >= n


async def test_the_receiver_gets_json_ntfy_and_slack_payloads_and_outcomes_are_recorded(settings, js, services):
    names = Names(settings.subject_prefix)
    async with Receiver(200) as rx:
        rules = {fmt: rule(name=f"cpu-{fmt}", threshold=90, duration_s=0, webhook_url=f"{rx.url}/hook/{fmt}?t=s3cr3t",
                           webhook_format=fmt) for fmt in ("json", "ntfy", "slack")}
        for r in rules.values():
            await put_rule(js, settings, r)
        services.writer()
        await services.evaluator()
        dev = uuid.uuid4()
        await publish_event(js, names.collected("web-1", "system_metrics"), cpu(dev, 0, 97, device="web-1"))
        await wait_until(lambda: _count(rx, 3), timeout=60, what="three webhook requests")

        by_path = {req.path.split("?")[0]: req for req in rx.requests}
        assert set(by_path) == {"/hook/json", "/hook/ntfy", "/hook/slack"}
        assert all(req.method == "POST" for req in rx.requests)
        as_json = events.decode(by_path["/hook/json"].body)
        assert (as_json.state, as_json.value, as_json.threshold, as_json.rule, as_json.device) == \
               ("fired", 97, 90, "cpu-json", "web-1")
        assert by_path["/hook/json"].headers["content-type"] == "application/json"
        ntfy = by_path["/hook/ntfy"]
        assert ntfy.headers["title"] == "cpu-ntfy fired on web-1" and ntfy.headers["priority"] == "high"
        assert ntfy.body.decode().startswith("cpu-ntfy: web-1 cpu = 97")
        slack = json.loads(by_path["/hook/slack"].body)
        assert "cpu-slack: web-1 cpu = 97" in slack["text"] and slack["attachments"][0]["color"] == "danger"

        recorded = await wait_until(lambda: _rows(settings, "alert_notifications", 3), timeout=60,
                                    what="three notification rows")
        assert {(r["format"], r["status"], r["attempts"]) for r in recorded} == \
               {("json", "delivered", 1), ("ntfy", "delivered", 1), ("slack", "delivered", 1)}
        assert all(r["url"] == f"http://127.0.0.1:{rx.port}/…" for r in recorded)  # no path, no token
        fired = await wait_until(lambda: _rows(settings, "alert_events", 3), timeout=60, what="three alert rows")
        assert {(r["rule_name"], r["state"], r["value"], r["threshold"]) for r in fired} == \
               {(f"cpu-{f}", "fired", 97, 90) for f in ("json", "ntfy", "slack")}


async def test_a_failing_webhook_is_retried_then_recorded_as_failed(settings, js, services, caplog):
    names = Names(settings.subject_prefix)
    closed = free_port()  # nothing listens here
    async with Receiver(500) as rx:
        failing = rule(name="cpu-500", threshold=90, duration_s=0, webhook_url=f"{rx.url}/hook?token=s3cr3t")
        unreachable = rule(name="cpu-closed", threshold=90, duration_s=0,
                           webhook_url=f"http://user:s3cr3t@127.0.0.1:{closed}/s3cr3t", webhook_format="slack")
        await put_rule(js, settings, failing)
        await put_rule(js, settings, unreachable)
        services.writer()
        await services.evaluator(alerts_webhook_attempts=3, alerts_webhook_timeout_s=2)
        dev = uuid.uuid4()
        with caplog.at_level(logging.DEBUG):
            await publish_event(js, names.collected("web-1", "system_metrics"), cpu(dev, 0, 97, device="web-1"))
            recorded = await wait_until(lambda: _rows(settings, "alert_notifications", 2), timeout=90,
                                        what="two notification rows")
        assert len(rx.requests) == 3  # every attempt reached the receiver
        by_rule = {r["rule_id"]: r for r in recorded}
        assert (by_rule[failing.id]["status"], by_rule[failing.id]["attempts"], by_rule[failing.id]["http_status"],
                by_rule[failing.id]["last_error"]) == ("failed", 3, 500, "HTTP 500")
        down = by_rule[unreachable.id]
        assert (down["status"], down["attempts"], down["http_status"]) == ("failed", 3, None)
        assert "ConnectError" in down["last_error"]
        outcomes = await notifications(js, settings)
        assert sorted((n.rule, n.delivered, n.attempts) for n in outcomes) == [("cpu-500", False, 3),
                                                                               ("cpu-closed", False, 3)]
        assert len(await alerts(js, settings)) == 2
        assert "s3cr3t" not in caplog.text and "s3cr3t" not in str([dict(r) for r in recorded])
        assert "NOT notified" in caplog.text


def _alert_request():
    from services.alerts.notify import Request

    return Request(b"{}", {"Content-Type": "application/json"})


async def _deliver(url: str, allow_private: bool):
    import httpx

    from services.alerts.notify import deliver

    async with httpx.AsyncClient() as client:
        return await deliver(client, url, _alert_request(), attempts=3, timeout_s=5, backoff_s=0.01,
                             backoff_max_s=0.01, allow_private=allow_private)


async def test_loopback_link_local_and_private_targets_are_refused_at_send_time():
    async with Receiver(200) as rx:
        for url in (f"{rx.url}/hook", f"http://localhost:{rx.port}/hook", "http://169.254.169.254/latest",
                    "http://192.168.1.1/hook", "http://[::1]/hook", "http://100.64.0.1/hook"):
            outcome = await _deliver(url, allow_private=False)
            assert (outcome.delivered, outcome.attempts) == (False, 1), url  # refused: not retried
            assert outcome.last_error.startswith("refused: ") and "ALLOW_PRIVATE" in outcome.last_error, url
        assert rx.requests == []  # nothing reached the receiver


async def test_allowed_private_targets_get_the_request_at_the_checked_address_with_the_hosts_name():
    async with Receiver(200) as rx:
        outcome = await _deliver(f"http://localhost:{rx.port}/hook?t=s3cr3t", allow_private=True)
        assert (outcome.delivered, outcome.attempts) == (True, 1)
        assert [r.path for r in rx.requests] == ["/hook?t=s3cr3t"]
        assert rx.requests[0].headers["host"] == f"localhost:{rx.port}"  # sent to 127.0.0.1, named as given


async def test_the_evaluator_refuses_a_loopback_webhook_by_default(settings, js, services):
    names = Names(settings.subject_prefix)
    async with Receiver(200) as rx:
        await put_rule(js, settings, rule(name="cpu-local", threshold=90, duration_s=0, webhook_url=f"{rx.url}/hook"))
        services.writer()
        await services.evaluator(alerts_webhook_allow_private=False)
        await publish_event(js, names.collected("web-1", "system_metrics"), cpu(uuid.uuid4(), 0, 97, device="web-1"))
        recorded = await wait_until(lambda: _rows(settings, "alert_notifications", 1), timeout=60,
                                    what="a notification row")
        assert (recorded[0]["status"], recorded[0]["attempts"]) == ("failed", 1)
        assert "loopback" in recorded[0]["last_error"]
        assert rx.requests == []


def _with_causes() -> AlertChanged:
    from tests.alerts.test_history import fired  # a fired alert on nas-01

    alert = fired(at(600))
    return msgspec.structs.replace(alert, rule="cpu-high", message="cpu-high fired on nas-01", causes=[
        Cause(time=at(600 - 12 * 60), kind="config", subject="/etc/nginx/conf.d/app.conf",
              summary="nginx /etc/nginx/conf.d/app.conf MODIFY: 2 changed (HIGH)", risk="HIGH", score=3.6),
        Cause(time=at(570), kind="container", subject="web", summary="container web started: nginx:1.27",
              risk="LOW", score=3.2)])


def test_each_format_carries_the_causes_and_a_dashboard_link_when_its_url_is_set():
    alert = _with_causes()
    lines = ["• 12 min before: nginx /etc/nginx/conf.d/app.conf MODIFY: 2 changed (HIGH)",
             "• under a minute before: container web started: nginx:1.27 (LOW)"]
    body = json.loads(notify.request(alert, "json").content)
    assert [c["summary"] for c in body["causes"]] == [c.summary for c in alert.causes]

    ntfy = notify.request(alert, "ntfy", "https://iw.example/")
    assert ntfy.content.decode().splitlines() == ["cpu-high fired on nas-01", "", "Likely causes:", *lines]
    assert ntfy.headers["Click"] == "https://iw.example/dashboard/#/devices/nas-01"
    slack = json.loads(notify.request(alert, "slack", "https://iw.example").content)
    assert slack["text"].splitlines()[1:] == ["Likely causes:", *lines,
                                              "<https://iw.example/dashboard/#/devices/nas-01|nas-01>"]

    assert "Click" not in notify.request(alert, "ntfy").headers
    assert "dashboard" not in json.loads(notify.request(alert, "slack").content)["text"]
    bare = msgspec.structs.replace(alert, causes=[])
    assert notify.request(bare, "ntfy").content == b"cpu-high fired on nas-01"
    assert json.loads(notify.request(bare, "slack").content)["text"] == ":rotating_light: cpu-high fired on nas-01"
