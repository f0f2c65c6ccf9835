"""A fired alert carries the likely causes read from its device's history, on real NATS."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from services.alerts import history
from shared import events
from shared.names import Names
from shared.runtime.publish import publish_event
from tests.alerts.conftest import alerts, put_rule
from tests.alerts.test_causes import collected, nginx_change, redeployed
from tests.factories import metrics_event, rule
from tests.util import wait_until


async def _hot_cpu(js, names: Names, dev: uuid.UUID, now) -> None:
    for seconds in (40, 20, 0):
        await publish_event(js, names.collected("dev1", "system_metrics"),
                            metrics_event(dev, "dev1", at=now - timedelta(seconds=seconds), cpu=97))


async def test_a_fired_alert_carries_its_devices_ranked_changes(settings, js, services):
    names = Names(settings.subject_prefix)
    now = events.utcnow()
    dev = uuid.uuid4()
    r = rule(threshold=90, duration_s=30, cause_top=2)
    await put_rule(js, settings, r)
    await services.evaluator()
    previous, redeploy = redeployed(now - timedelta(minutes=5), dev)
    nginx = nginx_change(now - timedelta(minutes=20), dev)
    await publish_event(js, names.collected("dev1", "containers"),
                        collected("containers", previous, now - timedelta(minutes=40), dev))
    await publish_event(js, names.config("dev1", "proxy_configs"), nginx)
    await publish_event(js, names.config("dev1", "proxy_configs"), nginx_change(now - timedelta(minutes=31), dev))
    await publish_event(js, names.collected("dev1", "containers"), redeploy)
    await _hot_cpu(js, names, dev, now)

    (fired,) = await wait_until(lambda: alerts(js, settings), timeout=30, what="the fired alert")
    assert fired.state == "fired" and fired.occurred_at == now
    # promtail restarted (HIGH, related to cpu) 5 min before, then the HIGH nginx change 20 min before;
    # the MEDIUM container changes and the change 31 min before are left out
    assert [(c.kind, c.subject) for c in fired.causes] == [
        ("container", "promtail"), ("config", "/etc/nginx/sites-enabled/default")]
    assert fired.causes[1].ref == str(nginx.event_id) and fired.causes[1].risk == "HIGH"
    assert fired.causes[0].score > fired.causes[1].score


async def test_an_unreadable_history_does_not_lose_the_alert(settings, js, services, monkeypatch, caplog):
    async def unreadable(*args, **kw):
        raise RuntimeError("streams unavailable")

    monkeypatch.setattr(history, "causes_of", unreadable)
    names = Names(settings.subject_prefix)
    await put_rule(js, settings, rule(threshold=90, duration_s=30))
    await services.evaluator()
    with caplog.at_level(logging.WARNING, logger="services.alerts.service"):
        await _hot_cpu(js, names, uuid.uuid4(), events.utcnow())
        (fired,) = await wait_until(lambda: alerts(js, settings), timeout=30, what="the fired alert")
    assert fired.state == "fired" and fired.causes == []
    assert "fires without causes: RuntimeError: streams unavailable" in caplog.text
