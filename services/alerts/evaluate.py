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
    return AlertChanged(
        event_id=alert_id(rule, ev.device_id, t), operation_id=ev.operation_id, device_id=ev.device_id,
        device=device_token(ev), occurred_at=t.at, service=SERVICE, instance=instance, trigger="watch",
        rule_id=rule.id, rule=rule.name, metric=rule.metric, selector=rule.selector, operator=rule.operator,
        state=t.state, value=t.value, threshold=rule.threshold, duration_s=rule.duration_s, since=t.since,
        refire=t.refire, detail=detail, message=message(rule, device_token(ev), t, detail),
        source_event_id=ev.event_id,
    )


def apply(rule: AlertRule, state: RuleState, ev: Event, instance: str) -> tuple[RuleState, AlertChanged | None]:
    """Evaluate one event; returns ``state`` itself when nothing changed (nothing to write).

    An event already applied, or older than the last one that changed the state, changes nothing.
    """
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
    return new, alert
