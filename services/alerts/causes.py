"""Likely causes of an alert: what changed on its device just before it fired (pure, no I/O).

The ``from_*`` functions turn the project's events into :class:`Change` records; :func:`rank`
keeps those of the alert's device in ``[at - window, at]`` and scores each as the sum of:

- time: ``1 - age / window``, from 1 (at the alert) down to 0 (at the window's start);
- risk: LOW 0.25, MEDIUM 0.5, HIGH 1.5, CRITICAL 2 (config changes carry their assessed risk;
  failures, such as a failed unit or collection, an exited container or a fired alert, are HIGH);
- relation: 2 when the change concerns what the rule watches (see :func:`relation`), else 0.
  A HIGH or CRITICAL config change concerns every rule on its host (but a ``config_risk`` rule
  whose selector leaves its config type out).

So a related change always outranks an unrelated one of the same age and risk, and a related
change outranks an unrelated one up to a whole window older. A HIGH config change outranks a
related container, package or unit change of MEDIUM risk or lower anywhere in the window (short
of a tie at its very start): risk weighs more than age. Ties go to the newest, then by ref.
Every :class:`Scored` lists the reasons of its score.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from pathlib import PurePosixPath
from typing import Any, Literal

import msgspec

from shared.alert_events import AlertChanged
from shared.config_events import ConfigChanged, RiskLevel
from shared.datatypes.containers.payload import Container, Containers
from shared.datatypes.inventory.payload import Change as Drifted, Inventory
from shared.datatypes.systemd_services.payload import SystemdServices
from shared.envelope import Collected, Event, UtcDatetime

ChangeKind = Literal["config", "container", "package", "unit", "alert", "collection"]
RISK_WEIGHT: dict[str, float] = {"LOW": 0.25, "MEDIUM": 0.5, "HIGH": 1.5, "CRITICAL": 2.0}
RELATED = 2.0
CONTAINER_METRICS = frozenset({"container_state", "container_health", "container_restarts"})
STORAGE_METRICS = frozenset({"disk", "zfs_pool_not_online", "drive_temperature", "drive_failing"})
LOAD_METRICS = frozenset({"cpu", "memory", "load"})
STORAGE_TYPES = frozenset({"drive_health", "zfs", "mounts"})
# names of units, packages and config paths that are about drives, pools and mounts
STORAGE_NAME = re.compile(r"zfs|zpool|smart|mount|fstab|mdadm|lvm|nfs|cifs|\bdisk|\bdrive", re.IGNORECASE)
CONFIG_LABELS = {"proxy_configs": "nginx", "docker_compose": "compose", "systemd_units": "systemd"}
MAX_KEYS = 10


class Change(msgspec.Struct, frozen=True, kw_only=True):
    """One thing that changed on a device: a config file, a container, a package, a unit, an alert
    or a collection. ``ref`` is the id of the event it was read from."""

    time: UtcDatetime
    device_id: uuid.UUID
    kind: ChangeKind
    subject: str
    summary: str
    risk: RiskLevel | None = None
    ref: str
    detail: dict[str, Any] = {}


class Scored(msgspec.Struct, frozen=True, kw_only=True):
    change: Change
    score: float
    reasons: tuple[str, ...] = ()


def _change(ev: Event, kind: ChangeKind, subject: str, summary: str, risk: RiskLevel | None,
            **detail: Any) -> Change:
    assert ev.device_id is not None
    return Change(time=ev.occurred_at, device_id=ev.device_id, kind=kind, subject=subject, summary=summary,
                  risk=risk, ref=str(ev.event_id), detail=detail)


# --- extraction -----------------------------------------------------------------------------------

def _compose_containers(path: str, parsed: dict[str, Any] | None) -> list[str]:
    """Names the containers of a compose file get: ``container_name``, else ``<project>-<service>-1``
    (and the v1 ``<project>_<service>_1``), the project being the file's folder."""
    project = re.sub(r"[^a-z0-9_-]", "", PurePosixPath(path).parent.name.lower())
    out: list[str] = []
    for service, spec in ((parsed or {}).get("services") or {}).items():
        name = spec.get("container_name") if isinstance(spec, dict) else None
        out += [str(name)] if name else [f"{project}-{service}-1", f"{project}_{service}_1", str(service)]
    return out


def from_config(ev: ConfigChanged) -> list[Change]:
    """One change per changed file, with its assessed risk (MEDIUM when it was not assessed)."""
    impact = ev.impact
    risk: RiskLevel = impact.risk_level if impact else "MEDIUM"
    s = impact.summary if impact else None
    counts = [f"{len(keys)} {what}" for what, keys in
              (("changed", s.changed if s else []), ("added", s.added if s else []),
               ("removed", s.removed if s else [])) if keys]
    if s and s.metadata:
        counts.append(f"{', '.join(s.metadata)} changed")
    moved = f" from {ev.old_path}" if ev.change_type == "MOVE" and ev.old_path else ""
    summary = (f"{CONFIG_LABELS.get(ev.config_type, ev.config_type)} {ev.path} {ev.change_type}{moved}"
               f"{': ' + ', '.join(counts) if counts else ''} ({risk})")
    detail: dict[str, Any] = {"config_type": ev.config_type, "change_type": ev.change_type}
    if s:
        detail |= {k: v[:MAX_KEYS] for k, v in (("changed", s.changed), ("added", s.added),
                                                 ("removed", s.removed)) if v}
    if impact and impact.risk_rule:
        detail["risk_rule"] = impact.risk_rule
    if ev.config_type == "docker_compose":
        detail["containers"] = _compose_containers(ev.path, ev.parsed)
    change = _change(ev, "config", ev.path, summary, risk, **detail)
    # A change found by a scan or a poll (the watcher's first look at a host, a rescan after a
    # restart) happened when the file was written, not when it was found: a file that has been
    # there for months is not a change of the last half hour.
    if ev.trigger != "watch" and ev.mtime is not None and ev.mtime < ev.occurred_at:
        change = msgspec.structs.replace(change, time=ev.mtime)
    return [change]


def _exit_risk(c: Container) -> RiskLevel:
    return "MEDIUM" if re.match(r"Exited \(0\)", c.status) else "HIGH"


def _container_change(old: Container, new: Container) -> tuple[str, RiskLevel] | None:
    """What happened to one container between two snapshots, the most telling thing first."""
    n = new.name
    grew = old.restart_count is not None and new.restart_count is not None and new.restart_count > old.restart_count
    if old.image != new.image:
        how = "restarted" if new.state == "running" else f"{new.state},"
        return f"container {n} {how} with a new image {old.image} → {new.image}", "MEDIUM"
    if old.state == "running" and new.state != "running":
        return f"container {n} {'stopped' if new.state == 'exited' else new.state}: {new.status}", _exit_risk(new)
    if grew:
        return f"container {n} restarted ({old.restart_count} → {new.restart_count} restarts)", "HIGH"
    if old.id != new.id:
        return f"container {n} recreated ({new.state})", "LOW"
    if old.state != "running" and new.state == "running":
        return f"container {n} started", "LOW"
    return None


def from_containers(previous: Containers | None, payload: Containers, event: Collected) -> list[Change]:
    """Containers started, stopped or exited, restarted (their restart count grew), given a new
    image, created or removed since ``previous`` (without it, only the payload's ``removed``)."""
    out: list[Change] = []
    before = {c.name: c for c in previous.containers} if previous else {}
    now = {c.name for c in payload.containers}
    for c in payload.containers:
        old = before.get(c.name)
        if old is None:
            if previous is not None:
                verb = "started" if c.state == "running" else f"created ({c.state})"
                out.append(_change(event, "container", c.name, f"container {c.name} {verb}: {c.image}", "LOW",
                                   image_new=c.image, state_new=c.state))
            continue
        found = _container_change(old, c)
        if found:
            out.append(_change(event, "container", c.name, found[0], found[1], image_old=old.image,
                               image_new=c.image, state_old=old.state, state_new=c.state,
                               restarts_old=old.restart_count, restarts_new=c.restart_count))
    gone = {r.name: r.image for r in payload.removed if r.name not in now}  # a recreated one is not gone
    gone |= {c.name: c.image for c in before.values() if c.name not in now and c.name not in gone}
    for name, image in gone.items():
        out.append(_change(event, "container", name, f"container {name} removed: {image}", "MEDIUM",
                           image_old=image))
    return out


def _version_key(v: str) -> tuple[tuple[int, int, str], ...]:
    return tuple((0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.findall(r"\d+|[A-Za-z]+", v))


def _package(ev: Event, c: Drifted, what: str) -> Change:
    risk: RiskLevel
    if c.old is None:
        verb, risk = f"installed {c.new}", "LOW"
    elif c.new is None:
        verb, risk = f"removed (was {c.old})", "MEDIUM"
    else:
        older, newer = _version_key(c.old), _version_key(c.new)
        word = "upgraded" if newer > older else "downgraded" if newer < older else "changed"
        verb, risk = f"{word} {c.old} → {c.new}", "MEDIUM" if word == "downgraded" else "LOW"
    return _change(ev, "package", c.name, f"{what} {c.name} {verb}", risk, old=c.old, new=c.new)


def from_inventory(payload: Inventory, event: Collected) -> list[Change]:
    """The inventory's drift: system fields (MEDIUM), packages and python packages installed,
    removed, upgraded or downgraded."""
    drift = payload.drift
    if drift is None:
        return []
    out = [_change(event, "package", c.name, f"system {c.name} changed {c.old} → {c.new}", "MEDIUM",
                   old=c.old, new=c.new, system=True) for c in drift.system]
    out += [_package(event, c, "package") for c in drift.packages]
    out += [_package(event, c, "python package") for c in drift.python_packages]
    return out


def _failed(p: SystemdServices) -> set[str]:
    return set(p.failed) | {u.name for u in p.units if u.active == "failed"}


def from_systemd(previous: SystemdServices | None, payload: SystemdServices, event: Collected) -> list[Change]:
    """Units failed now that had not failed in ``previous`` (nothing without a previous snapshot)."""
    if previous is None:
        return []
    results = {u.name: u.result for u in payload.units}
    out = []
    for name in sorted(_failed(payload) - _failed(previous)):
        why = f" ({results[name]})" if results.get(name) else ""
        out.append(_change(event, "unit", name, f"unit {name} failed{why}", "HIGH", result=results.get(name)))
    return out


def from_alert(ev: AlertChanged) -> list[Change]:
    """A rule that fired (not its repeats, not its resolution)."""
    if ev.state != "fired" or ev.refire:
        return []
    of = f" ({ev.detail})" if ev.detail else ""
    return [_change(ev, "alert", ev.rule, f"alert {ev.rule} fired{of}", "HIGH", metric=ev.metric,
                    selector=ev.selector, value=ev.value, threshold=ev.threshold)]


def from_collection(event: Collected) -> list[Change]:
    """A collection that failed (HIGH) or found the data type unsupported (MEDIUM)."""
    if event.status not in ("error", "unsupported"):
        return []
    reason = (event.error or "").strip().splitlines()[:1]
    verb = "failed" if event.status == "error" else "unsupported"
    summary = f"{event.data_type} collection {verb}{': ' + reason[0][:160] if reason else ''}"
    return [_change(event, "collection", event.data_type, summary, "HIGH" if event.status == "error" else "MEDIUM",
                    status=event.status)]


# --- ranking ----------------------------------------------------------------------------------------

def _selects(selector: str | None, names: Iterable[str]) -> str | None:
    """The first of ``names`` the rule's selector (a glob; None: all) matches."""
    return next((n for n in names if selector is None or fnmatchcase(n, selector)), None)


def _group(metric: str) -> frozenset[str]:
    for group in (CONTAINER_METRICS, STORAGE_METRICS, LOAD_METRICS):
        if metric in group:
            return group
    return frozenset({metric})


def _is_storage(c: Change) -> bool:
    if c.kind == "collection":
        return c.subject in STORAGE_TYPES
    return c.kind in ("unit", "package", "config") and bool(STORAGE_NAME.search(c.subject))


def relation(c: Change, metric: str, selector: str | None = None) -> str | None:
    """Why ``c`` concerns a rule on ``metric``/``selector``, or None when it does not."""
    why = _relation(c, metric, selector)
    if why is None and c.kind == "config" and c.risk in ("HIGH", "CRITICAL"):
        narrowed = metric == "config_risk" and not _selects(selector, [str(c.detail.get("config_type"))])
        return None if narrowed else f"a {c.risk} config change on the host"
    return why


def _relation(c: Change, metric: str, selector: str | None) -> str | None:
    config_type = c.detail.get("config_type")
    sel = (selector or "").lower()
    if config_type == "proxy_configs" and ("nginx" in sel or (metric in CONTAINER_METRICS and "swag" in sel)):
        return f"nginx config, and the rule watches {selector}"
    if c.kind == "alert" and str(c.detail.get("metric")) in _group(metric):
        return f"an alert on {c.detail.get('metric')} fired first"
    if metric in CONTAINER_METRICS:
        if c.kind == "container" and _selects(selector, [c.subject]):
            return f"container {c.subject} is watched by the rule"
        named = _selects(selector, c.detail.get("containers", [])) if config_type == "docker_compose" else None
        return f"compose file defines container {named}" if named else None
    if metric in STORAGE_METRICS:
        return f"{c.kind} change on drives, pools or mounts" if _is_storage(c) else None
    if metric in LOAD_METRICS:
        return f"{c.kind} changes affect {metric}" if c.kind in ("container", "package", "unit") else None
    if metric == "systemd_failed":
        if c.kind == "unit" and _selects(selector, [c.subject]):
            return f"unit {c.subject} is watched by the rule"
        return "systemd unit file changed" if config_type == "systemd_units" else None
    if metric == "config_risk":
        return "config change" if c.kind == "config" and _selects(selector, [str(config_type)]) else None
    if metric == "collection_failures" and c.kind == "collection" and _selects(selector, [c.subject]):
        return f"{c.subject} collection is watched by the rule"
    return None


def _ago(age: timedelta) -> str:
    s = int(age.total_seconds())
    return f"{s}s before" if s < 60 else f"{s // 60}m before" if s < 3600 else f"{s // 3600}h{s % 3600 // 60:02d}m before"


def score(c: Change, *, at: datetime, metric: str, selector: str | None = None,
          window: timedelta = timedelta(minutes=30)) -> Scored:
    """The score of one change (see the module docstring) and its reasons."""
    age = at - c.time
    closeness = max(0.0, 1.0 - age / window) if window > timedelta(0) else 1.0
    reasons = [_ago(age)]
    total = closeness
    if c.risk is not None:
        total += RISK_WEIGHT[c.risk]
        reasons.append(f"risk {c.risk}")
    related = relation(c, metric, selector)
    if related:
        total += RELATED
        reasons.append(related)
    return Scored(change=c, score=round(total, 4), reasons=tuple(reasons))


def rank(changes: Sequence[Change], *, device_id: uuid.UUID, at: datetime, metric: str,
         selector: str | None = None, window: timedelta = timedelta(minutes=30), top: int = 5) -> list[Scored]:
    """The ``top`` likeliest causes of an alert on ``device_id`` at ``at``, likeliest first."""
    kept = [c for c in changes if c.device_id == device_id and at - window <= c.time <= at]
    scored = [score(c, at=at, metric=metric, selector=selector, window=window) for c in kept]
    scored.sort(key=lambda s: (-s.score, (at - s.change.time).total_seconds(), s.change.ref, s.change.kind,
                               s.change.subject))
    # One entry per thing that changed: the best-scored change of a file, container, package or
    # unit stands for the others of the window, which its reasons count.
    best: dict[tuple[str, str], Scored] = {}
    others: dict[tuple[str, str], int] = {}
    for s in scored:
        key = (s.change.kind, s.change.subject)
        if key in best:
            others[key] = others.get(key, 0) + 1
        else:
            best[key] = s
    out = [msgspec.structs.replace(s, reasons=(*s.reasons, f"{others[k]} more change(s) of it in the window"))
           if (k := (s.change.kind, s.change.subject)) in others else s for s in best.values()]
    return out[:max(top, 0)]
