"""The alert state machine, pure: ``step`` decides, ``apply`` reads an event and builds the alert.

Time is the ``occurred_at`` of the events, never the evaluator's clock: a rule with a 30 s
duration fires on the first event at least 30 s (by ``occurred_at``) after the one that started
the condition, however fast or late the events are evaluated, and a replay decides the same.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

import msgspec

from services.alerts.rules import Reading, failure_streaks, holds, read
from shared.alert_events import AlertChanged, AlertRule, AlertState
from shared.config_events import ConfigChanged
from shared.envelope import Collected, Event, UtcDatetime

ALERT_NS = uuid.UUID("6a1f7d0e-3c2b-4e59-9b8a-5d4c3b2a1f00")
SERVICE = "alerts"


def state_key(rule_id: uuid.UUID, device_id: uuid.UUID) -> str:
    """The key of a rule's state on a device in the state KV bucket."""
    return f"{rule_id}.{device_id}"


class RuleState(msgspec.Struct, kw_only=True):
    """The state of one rule on one device, kept in the alert state KV bucket."""

    status: Literal["ok", "pending", "firing"] = "ok"
    since: UtcDatetime | None = None  # when the condition started to hold (pending, firing)
    fired_at: UtcDatetime | None = None  # the last fired (or re-fired) alert
    value: float | None = None
    detail: str = ""
    updated_at: UtcDatetime | None = None  # occurred_at of the last event that changed this state
    last_event_id: uuid.UUID | None = None  # ... and its id: a redelivered event changes nothing
    streaks: dict[str, int] = {}  # collection_failures: failed collections in a row, per data type
    last_ok: UtcDatetime | None = None  # no_data: the last successful collection seen
    watched_from: UtcDatetime | None = None  # no_data: when the device was first checked
    fired: AlertChanged | None = None  # while firing: the alert, to resolve it when the rule goes
    outbox: AlertChanged | None = None  # decided but not yet known to be published


class Transition(msgspec.Struct, frozen=True, kw_only=True):
    state: AlertState
    value: float
    since: datetime
    at: datetime
    refire: bool = False


def step(state: RuleState, value: float | None, now: datetime, rule: AlertRule) -> tuple[RuleState, Transition | None]:
    """One evaluation: pending -> firing once the condition has held ``duration_s``; resolved when it
    clears; while firing, fired again at most every ``refire_interval_s`` (0: on every event)."""
    if value is None:
        return state, None
    if holds(rule, value):
        if state.status == "ok":
            state = msgspec.structs.replace(state, status="pending", since=now, value=value)
        if state.status == "pending":
            assert state.since is not None
            if (now - state.since).total_seconds() >= rule.duration_s:
                new = msgspec.structs.replace(state, status="firing", fired_at=now, value=value)
                return new, Transition(state="fired", value=value, since=state.since, at=now)
            return state, None
        assert state.since is not None and state.fired_at is not None
        if (now - state.fired_at).total_seconds() >= rule.refire_interval_s and now > state.fired_at:
            new = msgspec.structs.replace(state, fired_at=now, value=value)
            return new, Transition(state="fired", value=value, since=state.since, at=now, refire=True)
        return state, None
    if state.status == "firing":
        assert state.since is not None
        new = msgspec.structs.replace(state, status="ok", since=None, value=value)
        return new, Transition(state="resolved", value=value, since=state.since, at=now)
    if state.status == "pending":
        return msgspec.structs.replace(state, status="ok", since=None, value=value), None
    return state, None


def alert_id(rule: AlertRule, device_id: uuid.UUID, t: Transition) -> uuid.UUID:
    """The same decision gets the same id (and ``Nats-Msg-Id``) on every evaluator instance."""
    return uuid.uuid5(ALERT_NS, f"{rule.id}:{device_id}:{t.state}:{t.since.isoformat()}:{t.at.isoformat()}")


def _fmt(v: float) -> str:
    return f"{v:g}"


def message(rule: AlertRule, device: str, t: Transition, detail: str) -> str:
    what = f"{rule.metric}{f' [{rule.selector}]' if rule.selector else ''}"
    of = f" ({detail})" if detail else ""
    if rule.metric == "no_data":
        if t.state == "resolved":
            return f"{rule.name} resolved: {device} {what}: collected again"
        return f"{rule.name}: {device} {what} for {_fmt(t.value)} intervals{of} >= {_fmt(rule.threshold)}" \
               f"{' (still)' if t.refire else ''}"
    if t.state == "fired":
        held = f" for {rule.duration_s}s" if rule.duration_s else ""
        again = " (still)" if t.refire else ""
        return (f"{rule.name}: {device} {what} = {_fmt(t.value)}{of} {rule.operator} {_fmt(rule.threshold)}"
                f"{held}{again}")
    return f"{rule.name} resolved: {device} {what} = {_fmt(t.value)}{of}, no longer {rule.operator} " \
           f"{_fmt(rule.threshold)}"


def device_token(ev: Event) -> str:
    """The device's subject token: its name, else its id."""
    return ev.device or str(ev.device_id)


def alert_event(rule: AlertRule, ev: Event, t: Transition, detail: str, instance: str) -> AlertChanged:
    assert ev.device_id is not None
    return build_alert(rule, ev.device_id, device_token(ev), t, detail, instance, ev.operation_id, ev.event_id)


def build_alert(rule: AlertRule, device_id: uuid.UUID, device: str, t: Transition, detail: str, instance: str,
                operation_id: uuid.UUID | None = None, source_event_id: uuid.UUID | None = None,
                text: str | None = None) -> AlertChanged:
    """The alert of a decision; without an event behind it, its operation is the alert itself."""
    event_id = alert_id(rule, device_id, t)
    return AlertChanged(
        event_id=event_id, operation_id=operation_id or event_id, device_id=device_id, device=device,
        occurred_at=t.at, service=SERVICE, instance=instance, trigger="watch", rule_id=rule.id, rule=rule.name,
        metric=rule.metric, selector=rule.selector, operator=rule.operator, state=t.state, value=t.value,
        threshold=rule.threshold, duration_s=rule.duration_s, since=t.since, refire=t.refire, detail=detail,
        message=text if text is not None else message(rule, device, t, detail), source_event_id=source_event_id,
    )


def remember(state: RuleState, alert: AlertChanged | None) -> RuleState:
    """Keep the fired alert while firing; forget it once resolved."""
    if alert is None:
        return state
    return msgspec.structs.replace(state, fired=alert if alert.state == "fired" else None)


def retire(rule: AlertRule | None, state: RuleState, device_id: uuid.UUID, now: datetime, reason: str,
           instance: str) -> tuple[RuleState, AlertChanged | None]:
    """The rule is deleted or disabled: resolve its alert if firing (``reason`` is the detail)."""
    if state.status == "ok":
        return state, None
    new = msgspec.structs.replace(state, status="ok", since=None, fired=None)
    fired = state.fired
    if state.status != "firing" or (rule is None and fired is None):
        return new, None
    if rule is None:
        assert fired is not None
        rule = AlertRule(id=fired.rule_id, name=fired.rule, metric=fired.metric, selector=fired.selector,
                         operator=fired.operator, threshold=fired.threshold, duration_s=fired.duration_s)
    device = fired.device or str(device_id) if fired else str(device_id)
    assert state.since is not None
    t = Transition(state="resolved", value=state.value or 0.0, since=state.since, at=now)
    what = f"{rule.metric}{f' [{rule.selector}]' if rule.selector else ''}"
    return new, build_alert(rule, device_id, device, t, reason, instance,
                            text=f"{rule.name} resolved: {device} {what} ({reason})")


def observe(rule: AlertRule, state: RuleState, ev: Event, instance: str) -> tuple[RuleState, AlertChanged | None]:
    """no_data on an event: a successful collection newer than the last one is remembered, and
    resolves the alert if firing. Order-free (the latest wins), so late or redelivered events are safe."""
    if not isinstance(ev, Collected) or ev.status not in ("success", "partial"):
        return state, None
    if state.last_ok is not None and ev.occurred_at <= state.last_ok:
        return state, None
    new = msgspec.structs.replace(state, last_ok=ev.occurred_at)
    if state.status != "firing":
        return new, None
    assert state.since is not None
    t = Transition(state="resolved", value=0.0, since=state.since, at=ev.occurred_at)
    new = msgspec.structs.replace(new, status="ok", since=None, value=0.0, fired=None, detail="")
    return new, alert_event(rule, ev, t, f"collected {ev.data_type}", instance)


def check(rule: AlertRule, state: RuleState, device_id: uuid.UUID, device: str, now: datetime, interval_s: float,
          instance: str) -> tuple[RuleState, AlertChanged | None]:
    """no_data on a tick at ``now`` (the evaluator's clock): fires once ``threshold`` intervals passed
    without a successful collection since the last one, or since the device was first checked."""
    if state.last_ok is None and state.watched_from is None:
        return msgspec.structs.replace(state, watched_from=now), None
    base = state.last_ok or state.watched_from
    assert base is not None
    value = round((now - base).total_seconds() / interval_s, 2)
    if value < rule.threshold:
        return state, None
    if state.status == "firing":
        assert state.fired_at is not None and state.since is not None
        if (now - state.fired_at).total_seconds() < rule.refire_interval_s or now <= state.fired_at:
            return state, None
        t = Transition(state="fired", value=value, since=state.since, at=now, refire=True)
    else:
        t = Transition(state="fired", value=value, since=base, at=now)
    what = f" {rule.selector}" if rule.selector not in (None, "*") else ""
    detail = f"last successful{what} collection at {base.isoformat()}" if state.last_ok \
        else f"no successful{what} collection since {base.isoformat()}"
    alert = build_alert(rule, device_id, device, t, detail, instance)
    new = msgspec.structs.replace(state, status="firing", since=t.since, fired_at=now, value=value, detail=detail,
                                  fired=alert)
    return new, alert


def apply(rule: AlertRule, state: RuleState, ev: Event, instance: str) -> tuple[RuleState, AlertChanged | None]:
    """Evaluate one event; returns ``state`` itself when nothing changed (nothing to write).

    An event already applied, or older than the last one that changed the state, changes nothing.
    """
    if rule.metric == "no_data":
        return observe(rule, state, ev, instance)
    now = ev.occurred_at
    if state.last_event_id == ev.event_id or (state.updated_at is not None and now < state.updated_at):
        return state, None
    streaks = state.streaks
    if rule.metric == "collection_failures":
        assert isinstance(ev, Collected)
        streaks = failure_streaks(rule, state.streaks, ev)
    elif not isinstance(ev, (Collected, ConfigChanged)):
        return state, None
    reading: Reading | None = read(rule, ev, streaks)
    new, t = step(state, reading.value if reading else None, now, rule)
    if streaks != state.streaks:
        new = msgspec.structs.replace(new, streaks=streaks)
    if new is state:
        return state, None
    new = msgspec.structs.replace(new, updated_at=now, last_event_id=ev.event_id,
                                  detail=reading.detail if reading else state.detail)
    alert = alert_event(rule, ev, t, new.detail, instance) if t else None
    return remember(new, alert), alert
