"""A device's changes read back from the streams of a real nats-server (services.alerts.history)."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta

import msgspec

from services.alerts import history
from services.alerts.causes import rank
from shared import events
from shared.alert_events import AlertChanged, NotificationAttempted
from shared.names import Names
from shared.runtime.publish import publish_event
from tests.alerts.test_causes import DEV, OTHER, capture, collected, nginx_change, redeployed
from tests.factories import rule

T = datetime.now(UTC).replace(microsecond=0)  # stored now, so every event is in the streams' time range


def ago(minutes: float) -> datetime:
    return T - timedelta(minutes=minutes)


def fired(at: datetime, device_id: uuid.UUID = DEV) -> AlertChanged:
    r = rule(threshold=90)
    return events.new_event(AlertChanged, device_id=device_id, device="nas-01", service="alerts", instance="test",
                            trigger="watch", occurred_at=at, rule_id=r.id, rule="disk-full", metric="disk",
                            operator=">", state="fired", value=95, threshold=90, since=at, detail="mount /data")


async def _timeline(js, names: Names) -> dict[str, list]:
    """nas-01's last hour and a bit, and nas-02's changes at the same times; returns what was published."""
    baseline, redeploy = redeployed(ago(5))
    first = collected("containers", baseline, ago(40))  # before the window: only a baseline
    nginx = nginx_change(ago(20))
    too_old = nginx_change(ago(45))
    later = nginx_change(T + timedelta(minutes=1))
    alert = fired(ago(10))
    failed = collected("drive_health", None, ago(3), status="error", error="smartctl: command not found")
    mine = [(names.collected("nas-01", "containers"), first), (names.collected("nas-01", "containers"), redeploy),
            (names.config("nas-01", "proxy_configs"), nginx), (names.config("nas-01", "proxy_configs"), too_old),
            (names.config("nas-01", "proxy_configs"), later), (names.alert("nas-01", "disk-full"), alert),
            (names.collected("nas-01", "drive_health"), failed)]
    _, other_redeploy = redeployed(ago(5), OTHER)
    other = [(names.collected("nas-02", "containers"), collected("containers", baseline, ago(40), OTHER)),
             (names.collected("nas-02", "containers"), other_redeploy),
             (names.config("nas-02", "proxy_configs"), nginx_change(ago(15), OTHER)),
             # nas-01's name, but another device's id (a device renamed since)
             (names.config("nas-01", "proxy_configs"), nginx_change(ago(12), OTHER))]
    for subject, ev in mine + other:
        await publish_event(js, subject, ev)
    await js.publish(names.collected("nas-01", "containers"), b"{not an event")
    notified = events.new_event(
        NotificationAttempted, device_id=DEV, device="nas-01", service="alerts", instance="test", trigger="watch",
        occurred_at=ago(9), alert_event_id=alert.event_id, rule_id=alert.rule_id, rule="disk-full",
        alert_state="fired", url="https://hooks.example", format="json", attempts=1, delivered=True)
    await publish_event(js, names.alert_notification("nas-01", "disk-full"), notified)
    return {"nginx": [nginx], "too_old": [too_old], "later": [later], "alert": [alert], "failed": [failed],
            "redeploy": [redeploy], "other": [ev for _, ev in other]}


async def test_reads_the_devices_changes_in_the_window_with_a_baseline_and_nothing_else(settings, js):
    names = Names(settings.subject_prefix)
    sent = await _timeline(js, names)

    got = await history.device_changes(js, names, "nas-01", DEV, ago(30), T)

    assert all(ago(30) <= c.time <= T and c.device_id == DEV for c in got)
    assert [c.time for c in got] == sorted(c.time for c in got)
    refs = {c.ref for c in got}
    assert refs == {str(sent[k][0].event_id) for k in ("nginx", "alert", "failed", "redeploy")}
    assert not refs & {str(ev.event_id) for k in ("too_old", "later", "other") for ev in sent[k]}
    # the snapshot at -5 min is compared with the one at -40 min, read from before the window
    containers = {c.subject: c.summary for c in got if c.kind == "container"}
    assert containers == {
        "web-nginx-1": "container web-nginx-1 restarted with a new image nginx:1.25-alpine → nginx:1.27-alpine",
        "promtail": "container promtail restarted (14 → 17 restarts)",
        "web-db-1": "container web-db-1 removed: postgres:16"}
    assert {(c.kind, c.subject) for c in got if c.kind != "container"} == {
        ("config", "/etc/nginx/sites-enabled/default"), ("alert", "disk-full"), ("collection", "drive_health")}

    causes = history.to_causes(rank(got, device_id=DEV, at=T, metric="cpu", top=10))
    assert len(causes) == len(got) and [c.score for c in causes] == sorted((c.score for c in causes), reverse=True)
    order = [c.subject for c in causes]
    assert order.index("/etc/nginx/sites-enabled/default") < order.index("web-nginx-1")
    (nginx,) = [c for c in causes if c.kind == "config"]
    assert (nginx.risk, nginx.ref, nginx.time) == ("HIGH", str(sent["nginx"][0].event_id), ago(20))
    assert nginx.reasons == ["20m before", "risk HIGH", "a HIGH config change on the host"]
    assert msgspec.json.decode(msgspec.json.encode(nginx), type=type(nginx)) == nginx


async def test_a_device_without_events_has_no_changes(settings, js):
    names = Names(settings.subject_prefix)
    await _timeline(js, names)
    assert await history.device_changes(js, names, "nas-03", uuid.uuid4(), ago(30), T) == []


async def test_a_cut_read_is_logged_and_what_was_read_is_used(settings, js, monkeypatch, caplog):
    names = Names(settings.subject_prefix)
    for minutes in (25, 20, 15):
        ev = capture("containers", "docker-24-compose")
        await publish_event(js, names.collected("nas-01", "containers"), collected("containers", ev, ago(minutes)))
    await publish_event(js, names.config("nas-01", "proxy_configs"), nginx_change(ago(2)))
    monkeypatch.setattr(history, "MAX_MESSAGES", 2)
    with caplog.at_level(logging.WARNING, logger="services.alerts.history"):
        got = await history.device_changes(js, names, "nas-01", DEV, ago(30), T)
    assert [c.kind for c in got] == ["config"]
    assert "cut after 2 messages (message limit)" in caplog.text


def test_a_failing_type_counts_once_when_its_status_changes_not_at_every_poll():
    """A host without docker reports containers unsupported every poll: that is one change, when
    it started, not a cause of every alert; a success and a new failure are changes again."""
    from tests.factories import metrics_event

    statuses = ["unsupported", "unsupported", "unsupported", "success", "error", "error"]
    evs = [msgspec.structs.replace(metrics_event(DEV, "dev1", at=ago(30 - i), status=s), skipped_fresh=False)
           for i, s in enumerate(statuses)]
    found = [(c.kind, c.detail["status"]) for c in history._collected_changes(evs) if c.kind == "collection"]
    assert found == [("collection", "unsupported"), ("collection", "error")]
