"""What a rule watches: which events it applies to and the value it reads from each (pure).

Every metric reduces an event to one number per device, so a rule has one state per device:
the worst mount, drive or container for the "max" metrics, how many are in trouble for the
"count" metrics (see docs/alerts.md for the table).
"""

from __future__ import annotations

import operator as op
from collections.abc import Callable
from fnmatch import fnmatchcase
from typing import Any

import msgspec

from shared.alert_events import RISK_RANK, AlertRule
from shared.config_events import ConfigChanged
from shared.datatypes import REGISTRY
from shared.envelope import Collected, Event

COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">": op.gt, ">=": op.ge, "<": op.lt, "<=": op.le, "==": op.eq, "!=": op.ne,
}
LOAD_FIELDS = {"1": "load_1", "5": "load_5", "15": "load_15"}


class Reading(msgspec.Struct, frozen=True):
    """The value a rule reads from one event, and what it is of (a mount, drive names…)."""

    value: float
    detail: str = ""


def holds(rule: AlertRule, value: float) -> bool:
    return COMPARE[rule.operator](value, rule.threshold)


def _match(selector: str | None, name: str, default: str = "*") -> bool:
    return fnmatchcase(name, selector or default)


def _is_glob(selector: str | None) -> bool:
    return selector is None or any(c in selector for c in "*?[")


def _worst(items: list[tuple[str, float]], what: str) -> Reading | None:
    if not items:
        return None
    name, value = max(items, key=lambda nv: nv[1])
    return Reading(float(value), f"{what} {name}")


def _count(bad: list[str], what: str) -> Reading:
    return Reading(float(len(bad)), f"{what}: {', '.join(sorted(bad))}" if bad else f"no {what}")


# metric -> (data type it reads, fn(rule, payload) -> Reading | None)
def _cpu(rule: AlertRule, p: Any) -> Reading | None:
    return Reading(float(p.cpu_percent))


def _memory(rule: AlertRule, p: Any) -> Reading | None:
    return Reading(float(p.memory_percent))


def _disk(rule: AlertRule, p: Any) -> Reading | None:
    return _worst([(fs.mount, fs.used_percent) for fs in p.filesystems if _match(rule.selector, fs.mount, "/")],
                  "mount")


def _load(rule: AlertRule, p: Any) -> Reading | None:
    field = LOAD_FIELDS.get(rule.selector or "1")
    return None if field is None else Reading(float(getattr(p, field)), field)


def _drive_temperature(rule: AlertRule, p: Any) -> Reading | None:
    return _worst([(d.name, d.temperature_celsius) for d in p.drives
                   if d.temperature_celsius is not None and _match(rule.selector, d.name)], "drive")


def _drive_failing(rule: AlertRule, p: Any) -> Reading | None:
    drives = [d for d in p.drives if _match(rule.selector, d.name)]
    return _count([d.name for d in drives if d.failing or d.healthy is False], "failing drives")


def _containers(rule: AlertRule, p: Any) -> list[Any]:
    return [c for c in p.containers if _match(rule.selector, c.name)]


def _container_state(rule: AlertRule, p: Any) -> Reading | None:
    matched = _containers(rule, p)
    bad = [c.name for c in matched if c.state != "running"]
    if not matched and not _is_glob(rule.selector):  # the one named container is gone
        bad = [f"{rule.selector} (absent)"]
    return _count(bad, "containers not running")


def _container_health(rule: AlertRule, p: Any) -> Reading | None:
    return _count([c.name for c in _containers(rule, p) if c.health == "unhealthy"], "unhealthy containers")


def _container_restarts(rule: AlertRule, p: Any) -> Reading | None:
    return _worst([(c.name, c.restart_count) for c in _containers(rule, p) if c.restart_count is not None],
                  "container")


def _systemd_failed(rule: AlertRule, p: Any) -> Reading | None:
    failed = set(p.failed) | {u.name for u in p.units if u.active == "failed"}
    return _count([name for name in failed if _match(rule.selector, name)], "failed units")


def _zfs_pool_not_online(rule: AlertRule, p: Any) -> Reading | None:
    return _count([f"{pool.name} {pool.health}" for pool in p.pools
                   if pool.health != "ONLINE" and _match(rule.selector, pool.name)], "pools not online")


PAYLOAD_METRICS: dict[str, tuple[str, Callable[[AlertRule, Any], Reading | None]]] = {
    "cpu": ("system_metrics", _cpu),
    "memory": ("system_metrics", _memory),
    "disk": ("system_metrics", _disk),
    "load": ("system_metrics", _load),
    "drive_temperature": ("drive_health", _drive_temperature),
    "drive_failing": ("drive_health", _drive_failing),
    "container_state": ("containers", _container_state),
    "container_health": ("containers", _container_health),
    "container_restarts": ("containers", _container_restarts),
    "systemd_failed": ("systemd_services", _systemd_failed),
    "zfs_pool_not_online": ("zfs", _zfs_pool_not_online),
}


def applies(rule: AlertRule, ev: Event) -> bool:
    """Whether ``ev`` is an event this rule evaluates (kind, device, enabled)."""
    if not rule.enabled or ev.device_id is None:
        return False
    if rule.device_id is not None and rule.device_id != ev.device_id:
        return False
    if rule.metric == "config_risk":
        return isinstance(ev, ConfigChanged)
    if not isinstance(ev, Collected) or ev.skipped_fresh:
        return False
    if rule.metric == "collection_failures":
        return True
    if rule.metric == "no_data":
        return _match(rule.selector, ev.data_type)
    return PAYLOAD_METRICS[rule.metric][0] == ev.data_type


def no_data_types(selector: str | None) -> list[str]:
    """The registered data types a no_data selector watches (None and ``*``: all of them)."""
    return [name for name in REGISTRY if _match(selector, name)]


def no_data_interval_s(selector: str | None, overrides: dict[str, float] | None = None) -> float | None:
    """The shortest collection interval of the watched types (None when the selector matches none)."""
    overrides = overrides or {}
    intervals = [float(overrides.get(n, REGISTRY[n].collect.INTERVAL_S)) for n in no_data_types(selector)]
    return min(intervals, default=None)


def failure_streaks(rule: AlertRule, streaks: dict[str, int], ev: Collected) -> dict[str, int]:
    """Consecutive failed collections per data type, after ``ev`` (an error adds one, anything else resets)."""
    if not _match(rule.selector, ev.data_type):
        return streaks
    out = dict(streaks)
    if ev.status == "error":
        out[ev.data_type] = out.get(ev.data_type, 0) + 1
    else:
        out.pop(ev.data_type, None)
    return out


def read(rule: AlertRule, ev: Event, streaks: dict[str, int] | None = None) -> Reading | None:
    """The value ``rule`` reads from ``ev``; None when the event carries none (a failed collection,
    no matching mount). ``collection_failures`` reads the streaks after the event."""
    if rule.metric == "config_risk":
        assert isinstance(ev, ConfigChanged)
        if not _match(rule.selector, ev.config_type):
            return None
        risk = ev.impact.risk_level if ev.impact else "MEDIUM"
        return Reading(float(RISK_RANK[risk]), f"{ev.path} {ev.change_type} ({risk} risk)")
    if rule.metric == "collection_failures":
        worst = max((streaks or {}).items(), key=lambda kv: kv[1], default=None)
        return Reading(float(worst[1]), f"{worst[0]} failed {worst[1]} times in a row") if worst \
            else Reading(0.0, "collections succeed")
    payload = getattr(ev, "payload", None)
    if payload is None or (isinstance(ev, Collected) and ev.status not in ("success", "partial")):
        return None
    return PAYLOAD_METRICS[rule.metric][1](rule, payload)
