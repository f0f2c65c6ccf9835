"""The evaluator on real NATS: durations by occurred_at, restarts, two instances, state in KV."""

from __future__ import annotations

import asyncio
import uuid

import msgspec
from nats.js.errors import KeyNotFoundError

from services.alerts.evaluate import RuleState
from services.alerts.service import Evaluator, RuleBook, state_key
from services.alerts.settings import AlertSettings
from shared.names import Names
from shared.runtime.publish import publish_event
from tests.alerts.conftest import alerts, put_rule, wait_caught_up
from tests.factories import at, cpu, rule
from tests.util import wait_until


async def _state(js, settings, r, device_id) -> RuleState | None:
    kv = await js.key_value(Names(settings.subject_prefix).alert_state_bucket)
    try:
        entry = await kv.get(state_key(r.id, device_id))
    except KeyNotFoundError:
        return None
    return msgspec.json.decode(entry.value, type=RuleState)


async def test_fires_after_30s_by_occurred_at_keeps_state_over_a_restart_and_resolves(settings, js, services):
    names = Names(settings.subject_prefix)
    r = rule(threshold=90, duration_s=30)
    await put_rule(js, settings, r)
    dev = uuid.uuid4()
    subject = names.collected("dev1", "system_metrics")

    first = await services.evaluator("alerts-1")
    for seconds in (0, 10, 20):
        await publish_event(js, subject, cpu(dev, seconds, 95))
    await wait_caught_up(js, settings)
    state = await _state(js, settings, r, dev)
    assert state is not None and state.status == "pending" and state.since == at(0)
    assert await alerts(js, settings) == []

    await services.stop(first)  # a restart in the middle of the 30 s
    await services.evaluator("alerts-2")
    await publish_event(js, subject, cpu(dev, 29, 96))
    await wait_caught_up(js, settings)
    assert await alerts(js, settings) == []  # held 29 s: not yet

    await publish_event(js, subject, cpu(dev, 30, 97))
    fired = await wait_until(lambda: alerts(js, settings), timeout=30, what="the fired alert")
    assert [(a.state, a.value, a.threshold, a.since, a.occurred_at) for a in fired] == \
           [("fired", 97, 90, at(0), at(30))]
    msg = await js.get_last_msg(names.stream_alerts, names.alert("dev1", r.name))
    assert msg.headers["Nats-Msg-Id"] == str(fired[0].event_id)

    await publish_event(js, subject, cpu(dev, 40, 98))  # still firing: no repeat before refire_interval_s
    await publish_event(js, subject, cpu(dev, 45, 50))
    both = await wait_until(lambda: _when(alerts(js, settings), 2), timeout=30, what="the resolved alert")
    assert [(a.state, a.value, a.since, a.occurred_at) for a in both] == \
           [("fired", 97, at(0), at(30)), ("resolved", 50, at(0), at(45))]
    assert (await _state(js, settings, r, dev)).status == "ok"


async def _when(coro, n: int):
    items = await coro
    return items if len(items) >= n else None


async def test_two_evaluators_fire_each_alert_once(settings, js, services):
    names = Names(settings.subject_prefix)
    r = rule(threshold=90, duration_s=30)
    await put_rule(js, settings, r)
    await services.evaluator("alerts-a")
    await services.evaluator("alerts-b")
    devices = {f"dev{i}": uuid.uuid4() for i in range(4)}
    for seconds in range(0, 125, 5):  # 2 minutes over the threshold, then back below
        for name, dev in devices.items():
            await publish_event(js, names.collected(name, "system_metrics"),
                                cpu(dev, seconds, 95 if seconds < 120 else 40, device=name))
    await wait_caught_up(js, settings)
    got = await wait_until(lambda: _when(alerts(js, settings), 2 * len(devices)), timeout=30, what="the alerts")
    await asyncio.sleep(1)  # nothing more arrives
    got = await alerts(js, settings)
    per_device = {name: sorted(a.state for a in got if a.device == name) for name in devices}
    assert per_device == {name: ["fired", "resolved"] for name in devices}


async def test_racing_on_the_same_event_publishes_one_alert(settings, js):
    """Two evaluators deciding from the same state: the compare-and-set lets one win; the other finds
    the event applied. Run many rounds, each on a fresh rule, so the race really happens."""
    names = Names(settings.subject_prefix)
    s = AlertSettings(**settings.model_dump())
    kv = await js.key_value(names.alert_state_bucket)
    a, b = (Evaluator(s.model_copy(update={"instance": i}), js, RuleBook(kv), kv, None) for i in ("a", "b"))
    dev = uuid.uuid4()
    for n in range(20):
        r = rule(threshold=90, duration_s=0, name=f"race-{n}")
        ev = cpu(dev, n, 99)
        results = await asyncio.gather(a.evaluate(r, ev), b.evaluate(r, ev))
        assert sum(x is not None for x in results) == 1, results
    conflicts = a.perf.w_errors.get("state_conflict", 0) + b.perf.w_errors.get("state_conflict", 0)
    assert conflicts >= 1  # the race did happen
    got = await alerts(js, settings)
    assert sorted(x.rule for x in got) == sorted(f"race-{n}" for n in range(20))
