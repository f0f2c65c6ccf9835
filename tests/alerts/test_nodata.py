"""no_data on real NATS: silent and failing devices fire after N intervals and resolve on the next
success; deleting or disabling a firing rule resolves it; two evaluators publish each alert once."""

from __future__ import annotations

import asyncio
import uuid

import msgspec
from nats.js.errors import KeyNotFoundError

from services.alerts.evaluate import state_key
from shared import events
from shared.events import DeviceSpec
from shared.names import Names
from shared.runtime import devices
from shared.runtime.publish import publish_event
from tests.alerts.conftest import alerts, put_rule, wait_caught_up
from tests.api.conftest import auth
from tests.factories import metrics_event, rule
from tests.util import wait_until

FAST = {"alerts_tick_s": 0.2, "collector_interval_overrides": {"system_metrics": 1.0}}


async def _register(js, settings, name: str) -> uuid.UUID:
    spec = DeviceSpec(id=uuid.uuid4(), name=name, address="10.0.0.9", username="ops")
    await devices.register(js, Names(settings.subject_prefix), spec, "test", "test")
    return spec.id


async def _collected(js, settings, device_id: uuid.UUID, name: str, status: str = "success"):
    ev = metrics_event(device_id, name, at=events.utcnow(), status=status)
    await publish_event(js, Names(settings.subject_prefix).collected(name, "system_metrics"), ev)
    return ev


def _of(got, device: str, rule_name: str | None = None):
    return [a for a in got if a.device == device and (rule_name is None or a.rule == rule_name)]


async def _alerts_of(js, settings, device: str, n: int, rule_name: str | None = None):
    got = _of(await alerts(js, settings), device, rule_name)
    return got if len(got) >= n else None


async def test_a_silent_device_fires_after_n_intervals_and_resolves_when_it_reports_again(settings, js, services):
    r = rule("no_data", selector="system_metrics", operator=">=", threshold=2, duration_s=0)
    await put_rule(js, settings, r)
    await services.evaluator("alerts-1", **FAST)
    online = await _register(js, settings, "nd-online")
    never = await _register(js, settings, "nd-never")
    last = await _collected(js, settings, online, "nd-online")
    await wait_caught_up(js, settings)

    fired = await wait_until(lambda: _alerts_of(js, settings, "nd-online", 1), timeout=60, what="the no_data alert")
    assert [(a.state, a.metric, a.operator, a.since) for a in fired] == [("fired", "no_data", ">=", last.occurred_at)]
    assert fired[0].value >= 2 and fired[0].occurred_at > last.occurred_at
    silent = await wait_until(lambda: _alerts_of(js, settings, "nd-never", 1), timeout=60, what="the silent device")
    assert silent[0].state == "fired" and silent[0].device_id == never and "no successful" in silent[0].detail

    back = await _collected(js, settings, online, "nd-online")
    both = await wait_until(lambda: _alerts_of(js, settings, "nd-online", 2), timeout=60, what="the resolved alert")
    assert [(a.state, a.since) for a in both] == [("fired", last.occurred_at), ("resolved", last.occurred_at)]
    assert both[1].source_event_id == back.event_id and both[1].occurred_at == back.occurred_at


async def test_failed_collections_count_as_no_data(settings, js, services):
    r = rule("no_data", selector="system_*", operator=">=", threshold=2, duration_s=0)
    await put_rule(js, settings, r)
    await services.evaluator("alerts-1", **FAST)
    dev = await _register(js, settings, "nd-failing")
    ok = await _collected(js, settings, dev, "nd-failing")
    stop = asyncio.Event()

    async def failing():
        while not stop.is_set():
            await _collected(js, settings, dev, "nd-failing", status="error")
            await asyncio.sleep(0.2)

    task = asyncio.create_task(failing())
    try:
        fired = await wait_until(lambda: _alerts_of(js, settings, "nd-failing", 1), timeout=60,
                                 what="no_data despite failed collections")
    finally:
        stop.set()
        await task
    assert fired[0].state == "fired" and fired[0].since == ok.occurred_at
    await _collected(js, settings, dev, "nd-failing", status="partial")
    both = await wait_until(lambda: _alerts_of(js, settings, "nd-failing", 2), timeout=60, what="resolved")
    assert [a.state for a in both] == ["fired", "resolved"]


async def _state_exists(js, settings, key: str) -> bool:
    kv = await js.key_value(Names(settings.subject_prefix).alert_state_bucket)
    try:
        await kv.get(key)
    except KeyNotFoundError:
        return False
    return True


async def test_deleting_or_disabling_a_firing_rule_resolves_it(settings, js, services):
    names = Names(settings.subject_prefix)
    doomed, paused = (rule(threshold=90, duration_s=0, name=n) for n in ("cpu-doomed", "cpu-paused"))
    for r in (doomed, paused):
        await put_rule(js, settings, r)
    await services.evaluator("alerts-1", **FAST)
    dev = uuid.uuid4()
    await publish_event(js, names.collected("nd-hot", "system_metrics"),
                        metrics_event(dev, "nd-hot", at=events.utcnow(), cpu=99))
    await wait_until(lambda: _alerts_of(js, settings, "nd-hot", 2), timeout=60, what="both rules firing")

    kv = await js.key_value(names.alert_rules_bucket)
    await kv.delete(str(doomed.id))
    await put_rule(js, settings, msgspec.structs.replace(paused, enabled=False))
    got = await wait_until(lambda: _alerts_of(js, settings, "nd-hot", 4), timeout=60, what="both resolved")
    per_rule = {r.name: [(a.state, a.detail) for a in _of(got, "nd-hot", r.name)] for r in (doomed, paused)}
    assert per_rule == {"cpu-doomed": [("fired", ""), ("resolved", "rule deleted")],
                        "cpu-paused": [("fired", ""), ("resolved", "rule disabled")]}
    assert all("resolved" in a.message for a in got if a.state == "resolved")
    await wait_until(lambda: not_(_state_exists(js, settings, state_key(doomed.id, dev))), what="the state gone")


async def not_(coro) -> bool:
    return not await coro


async def test_two_evaluators_fire_and_resolve_a_no_data_alert_once(settings, js, services):
    r = rule("no_data", selector="*", operator=">=", threshold=2, duration_s=0)
    await put_rule(js, settings, r)
    await services.evaluator("alerts-a", **FAST)
    await services.evaluator("alerts-b", **FAST)
    await _register(js, settings, "nd-twice")
    await wait_until(lambda: _alerts_of(js, settings, "nd-twice", 1), timeout=60, what="the fired alert")
    await asyncio.sleep(1)  # several more ticks of both: nothing more
    assert [a.state for a in _of(await alerts(js, settings), "nd-twice")] == ["fired"]

    kv = await js.key_value(Names(settings.subject_prefix).alert_rules_bucket)
    await kv.delete(str(r.id))
    await wait_until(lambda: _alerts_of(js, settings, "nd-twice", 2), timeout=60, what="the resolved alert")
    await asyncio.sleep(1)
    got = _of(await alerts(js, settings), "nd-twice")
    assert [(a.state, a.detail) for a in got] == \
           [("fired", f"no successful collection since {got[0].since.isoformat()}"), ("resolved", "rule deleted")]


async def test_the_api_checks_no_data_rules(client, keys):
    admin = auth(keys["admin"])
    for bad in ({"selector": "nonesuch"}, {"threshold": 0}, {"threshold": 1001}, {"selector": "x*"}):
        body = {"name": "nd", "metric": "no_data", "threshold": 3, **bad}
        r = await client.post("/rules", json=body, headers=admin)
        assert r.status_code == 422, (bad, r.text)
    r = await client.post("/rules", json={"name": "nd", "metric": "no_data", "selector": "drive_*", "threshold": 3,
                                          "operator": "<", "duration_s": 300}, headers=admin)
    assert r.status_code == 201, r.text
    assert (r.json()["operator"], r.json()["duration_s"], r.json()["threshold"]) == (">=", 0, 3)
    r = await client.post("/rules", json={"name": "nd-any", "metric": "no_data", "threshold": 1}, headers=admin)
    assert r.status_code == 201 and r.json()["selector"] is None
