"""The evaluator's clock-driven work: no_data checks on a tick, and resolving the alerts of a rule
that is deleted or disabled. Both go through the same compare-and-set and outbox as events do, so
with several instances running each alert is published once.

no_data is the one metric decided by the evaluator's clock rather than by events' ``occurred_at``:
an absence has no event. Every tick checks each enabled no_data rule on each registered device
(the device registry), against the last successful collection its state has seen.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from datetime import datetime
from typing import TYPE_CHECKING

from services.alerts.evaluate import RuleState, check, retire as resolve_retired, state_key
from services.alerts.rules import no_data_interval_s
from services.alerts.settings import AlertSettings
from shared import events
from shared.alert_events import AlertChanged, AlertRule

if TYPE_CHECKING:
    from services.alerts.service import Evaluator

log = logging.getLogger(__name__)

MAX_TICK_S = 30.0


def tick_s(settings: AlertSettings) -> float:
    """``alerts_tick_s``, else a quarter of the shortest collection interval, at most 30 s."""
    if settings.alerts_tick_s > 0:
        return settings.alerts_tick_s
    shortest = no_data_interval_s("*", settings.collector_interval_overrides) or MAX_TICK_S * 4
    return min(MAX_TICK_S, shortest / 4)


def watched(ev: Evaluator, rule: AlertRule) -> list[tuple[uuid.UUID, str]]:
    """The registered devices a rule checks: (id, name)."""
    devices = ev.devices.by_id if ev.devices is not None else {}
    if rule.device_id is not None:
        spec = devices.get(rule.device_id)
        return [(spec.id, spec.name)] if spec else []
    return [(spec.id, spec.name) for spec in list(devices.values())]


async def tick(ev: Evaluator) -> int:
    """Check every enabled no_data rule on its devices now; returns how many alerts it published."""
    now = events.utcnow()
    published = 0
    for rule in list(ev.rules.rules.values()):
        if rule.metric != "no_data" or not rule.enabled:
            continue
        interval = no_data_interval_s(rule.selector, ev.settings.collector_interval_overrides)
        if interval is None:
            continue
        for device_id, device in watched(ev, rule):
            decision = functools.partial(_check, rule, device_id, device, now, interval, ev.settings.instance)
            published += await ev.decide(rule, state_key(rule.id, device_id), decision) is not None
    return published


def _check(rule: AlertRule, device_id: uuid.UUID, device: str, now: datetime, interval: float, instance: str,
           state: RuleState) -> tuple[RuleState, AlertChanged | None]:
    return check(rule, state, device_id, device, now, interval, instance)


async def tick_loop(ev: Evaluator, stop: asyncio.Event) -> None:
    """Tick until ``stop``; a failed tick is logged and the next one tries again."""
    period = tick_s(ev.settings)
    while not stop.is_set():
        try:
            await tick(ev)
        except Exception as exc:
            log.warning("no_data check failed: %s: %s", type(exc).__name__, exc)
            ev.perf.error("no_data_check")
        try:
            await asyncio.wait_for(stop.wait(), period)
        except TimeoutError:
            pass


async def state_keys(ev: Evaluator, rule_id: uuid.UUID) -> list[str]:
    """The state keys of a rule (one per device it has state on)."""
    watcher = await ev.state.watch(f"{rule_id}.*", ignore_deletes=True, meta_only=True)
    keys = []
    try:
        async for entry in watcher:
            if entry is None:
                break
            keys.append(entry.key)
    finally:
        await watcher.stop()
    return keys


async def retire(ev: Evaluator, rule_id: uuid.UUID, rule: AlertRule | None, reason: str) -> None:
    """Resolve the rule's firing alerts (``reason`` is their detail); a deleted rule's states go too."""
    try:
        for key in await state_keys(ev, rule_id):
            try:
                device_id = uuid.UUID(key.split(".", 1)[1])
            except ValueError:
                continue
            now = events.utcnow()
            decision = functools.partial(_retire, rule, device_id, now, reason, ev.settings.instance)
            await ev.decide(rule, key, decision)
            if rule is None or reason == "rule deleted":
                await ev.state.delete(key)
    except Exception as exc:
        log.warning("resolving the alerts of %s %s failed: %s: %s", reason, rule_id, type(exc).__name__, exc)
        ev.perf.error("retire")


def _retire(rule: AlertRule | None, device_id: uuid.UUID, now: datetime, reason: str, instance: str,
            state: RuleState) -> tuple[RuleState, AlertChanged | None]:
    return resolve_retired(rule, state, device_id, now, reason, instance)
