"""A fired alert's likely causes, end to end on the real servers: the watcher's and the collector's
events on NATS, the evaluator, the writer, a webhook receiver and the API all show the same causes."""

from __future__ import annotations

import uuid
from datetime import timedelta

import msgspec

from services.alerts import notify
from shared import events
from shared.alert_events import AlertChanged
from shared.datatypes import REGISTRY
from shared.names import Names
from shared.runtime.publish import publish_event
from tests.alerts.conftest import alerts, put_rule
from tests.alerts.receiver import Receiver
from tests.alerts.test_causes import capture, collected, compose_created, nginx_change
from tests.api.conftest import auth
from tests.factories import metrics_event, rule
from tests.util import fetchval, wait_until

NGINX = "/etc/nginx/sites-enabled/default"
IMAGE = "nginx:1.25-alpine → nginx:1.27-alpine"


def _on(ev, device: str, device_id: uuid.UUID):
    return msgspec.structs.replace(ev, device=device, device_id=device_id, event_id=uuid.uuid4())


def _redeploy(device: str, device_id: uuid.UUID, previous_at, at):
    """A docker host's snapshot, then the same host with web-nginx-1 restarted on a new image."""
    previous = capture("containers", "docker-24-compose")
    current = capture("containers", "docker-24-compose")
    changed = [msgspec.structs.replace(c, image="nginx:1.27-alpine", status="Up 10 seconds")
               if c.name == "web-nginx-1" else c for c in current.containers]
    current = REGISTRY["containers"].collect.with_previous(
        previous, msgspec.structs.replace(current, containers=changed))
    return (_on(collected("containers", previous, previous_at), device, device_id),
            _on(collected("containers", current, at), device, device_id))


async def _publish_timeline(js, names: Names, device: str, dev: uuid.UUID, now) -> dict[str, events.Event]:
    """web-1's last two hours, as the watcher and the collector publish them, and db-1's nginx change."""
    unrelated = _on(compose_created(now - timedelta(hours=2)), device, dev)
    nginx = _on(nginx_change(now - timedelta(minutes=20)), device, dev)
    before, redeploy = _redeploy(device, dev, now - timedelta(minutes=40), now - timedelta(minutes=5))
    other = _on(nginx_change(now - timedelta(minutes=10)), "db-1", uuid.uuid4())
    await publish_event(js, names.config(device, "docker_compose"), unrelated)
    await publish_event(js, names.collected(device, "containers"), before)
    await publish_event(js, names.config(device, "proxy_configs"), nginx)
    await publish_event(js, names.config("db-1", "proxy_configs"), other)
    await publish_event(js, names.collected(device, "containers"), redeploy)
    for seconds in (40, 20, 0):  # over 90 % for 40 s: the 30 s rule fires at ``now``
        await publish_event(js, names.collected(device, "system_metrics"),
                            metrics_event(dev, device, at=now - timedelta(seconds=seconds), cpu=97))
    return {"unrelated": unrelated, "nginx": nginx, "redeploy": redeploy, "other": other}


def _check_causes(causes: list, sent: dict[str, events.Event]) -> None:
    """Both changes, the HIGH nginx change first with its diff summary; nothing older, nothing of db-1."""
    c = [msgspec.to_builtins(x) if not isinstance(x, dict) else x for x in causes]
    assert [(x["kind"], x["subject"]) for x in c] == [("config", NGINX), ("container", "web-nginx-1")]
    nginx, container = c
    assert nginx["ref"] == str(sent["nginx"].event_id) and nginx["risk"] == "HIGH"
    assert nginx["summary"].startswith(f"nginx {NGINX} MODIFY") and nginx["summary"].endswith("(HIGH)")
    assert nginx["detail"]["config_type"] == "proxy_configs"
    assert nginx["reasons"][:2] == ["20m before", "risk HIGH"]
    assert container["ref"] == str(sent["redeploy"].event_id) and IMAGE in container["summary"]
    assert nginx["score"] > container["score"]
    refs = {x["ref"] for x in c}
    assert str(sent["unrelated"].event_id) not in refs and str(sent["other"].event_id) not in refs


async def test_a_fired_alerts_causes_on_the_stream_in_the_database_in_the_api_and_in_the_webhook(
        settings, js, services, client, keys, device):
    names = Names(settings.subject_prefix)
    dev, name = uuid.UUID(device["id"]), device["name"]
    now = events.utcnow().replace(microsecond=0)
    async with Receiver() as receiver:
        r = rule(name="cpu-hot", threshold=90, duration_s=30, webhook_url=f"{receiver.url}/hook",
                 webhook_format="json")
        await put_rule(js, settings, r)
        services.writer()
        await services.evaluator(alerts_dashboard_url="https://infra.example.org")
        sent = await _publish_timeline(js, names, name, dev, now)

        (fired,) = await wait_until(lambda: alerts(js, settings), timeout=60, what="the fired alert")
        assert (fired.state, fired.device, fired.rule, fired.occurred_at) == ("fired", name, "cpu-hot", now)
        _check_causes(fired.causes, sent)

        (hook,) = await wait_until(lambda: receiver.requests, timeout=60, what="the webhook")
        assert (hook.method, hook.path, hook.headers["content-type"]) == ("POST", "/hook", "application/json")
        body = events.decode(hook.body)
        assert isinstance(body, AlertChanged) and body == fired
        _check_causes(msgspec.json.decode(hook.body)["causes"], sent)

    stored = await wait_until(lambda: fetchval(settings.database_url,
                                               "SELECT causes FROM alert_events WHERE event_id = $1", fired.event_id),
                              timeout=60, what="the alert_events row")
    _check_causes(msgspec.json.decode(stored) if isinstance(stored, str | bytes) else stored, sent)

    page = (await client.get(f"/alerts?device={name}&state=fired", headers=auth(keys["viewer"]))).json()
    (item,) = page["items"]
    assert item["event_id"] == str(fired.event_id)
    _check_causes(item["causes"], sent)

    # the same alert as a Slack (or Mattermost) message: the message, then one line per cause in order
    slack = msgspec.json.decode(notify.request(fired, "slack", "https://infra.example.org").content)
    lines = slack["text"].splitlines()
    assert lines[1:3] == ["Likely causes:", f"• 20 min before: {fired.causes[0].summary}"]
    assert lines[3].startswith("• 5 min before: container web-nginx-1 ") and IMAGE in lines[3]
    assert lines[4] == f"<https://infra.example.org/dashboard/#/devices/{name}|{name}>"
