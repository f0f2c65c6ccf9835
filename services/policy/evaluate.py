"""What one version of one file does to its violations (pure).

A policy's result on a file is the list of values its JSONPath returned (empty: no match). A
policy that matches and has no open violation opens one, naming this version as the one that
introduced it; an open violation whose policy no longer matches is resolved, naming this
version as the fix; one whose policy is gone (deleted, disabled, no longer applying to the
device) is resolved as ``policy``. A file deleted or moved away resolves all of its violations.
A version that could not be parsed decides nothing: a broken file fixes nothing.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import msgspec

from services.writer.projections.config import row_ids
from shared.config_events import ConfigChanged
from shared.policy_events import ConfigRef, ConfigViolation, Resolution, Severity, ViolationState

SERVICE = "policy"
MAX_MATCHES = 20
FIRED: ViolationState = "fired"
RESOLVED: ViolationState = "resolved"


class PolicyResult(msgspec.Struct, kw_only=True):
    """One applicable policy and what its JSONPath returned on the file."""

    policy_id: uuid.UUID
    name: str
    severity: Severity
    message: str
    found: list[Any]


class OpenViolation(msgspec.Struct, kw_only=True):
    """An open violation as stored in ``config_violations``."""

    id: uuid.UUID
    policy_id: uuid.UUID
    policy_name: str
    severity: Severity
    message: str
    matches: list[Any]
    match_count: int
    opened_at: datetime
    introduced_by: ConfigRef
    fired_event_id: uuid.UUID


class FileVersion(msgspec.Struct, kw_only=True):
    """One version of one file of one device, the one being evaluated."""

    device_id: uuid.UUID
    device: str | None
    config_type: str
    path: str
    ref: ConfigRef
    operation_id: uuid.UUID


class Update(msgspec.Struct, kw_only=True):
    """An open violation still matching, with its values now."""

    id: uuid.UUID
    matches: list[Any]
    match_count: int


class Plan(msgspec.Struct, kw_only=True):
    opened: list[ConfigViolation] = []
    resolved: list[ConfigViolation] = []
    updated: list[Update] = []

    def __bool__(self) -> bool:
        return bool(self.opened or self.resolved or self.updated)


def ref_of(ev: ConfigChanged) -> ConfigRef:
    return ConfigRef(event_id=ev.event_id, snapshot_id=row_ids(ev.event_id)[0], time=ev.occurred_at,
                     change_type=ev.change_type, sha256=ev.sha256)


def version_of(ev: ConfigChanged) -> FileVersion:
    assert ev.device_id is not None
    return FileVersion(device_id=ev.device_id, device=ev.device, config_type=ev.config_type, path=ev.path,
                       ref=ref_of(ev), operation_id=ev.operation_id)


def event_ids(violation_id: uuid.UUID) -> tuple[uuid.UUID, uuid.UUID]:
    """The ids of a violation's fired and resolved events (stable: a republish is deduplicated)."""
    return uuid.uuid5(violation_id, FIRED), uuid.uuid5(violation_id, RESOLVED)


def summary(policy: str, message: str, path: str, device: str | None, matches: list[Any], count: int,
            state: str) -> str:
    """One line, e.g. ``compose-privileged fired on web-1 /srv/app/compose.yaml: … (web, db)``."""
    shown = ", ".join(m if isinstance(m, str) else msgspec.json.encode(m).decode() for m in matches[:5])
    more = f" and {count - 5} more" if count > 5 else ""
    values = f" ({shown}{more})" if shown and state == FIRED else ""
    return f"{policy} {state} on {device or '?'} {path}: {message}{values}"[:1000]


def _event(v: FileVersion, violation_id: uuid.UUID, event_id: uuid.UUID, policy_id: uuid.UUID, policy: str,
           severity: Severity, message: str, state: ViolationState, matches: list[Any], count: int, since: datetime,
           introduced: ConfigRef, now: datetime, instance: str, fixed: ConfigRef | None = None,
           resolution: Resolution | None = None) -> ConfigViolation:
    return ConfigViolation(
        event_id=event_id, operation_id=v.operation_id, device_id=v.device_id, device=v.device, occurred_at=now,
        service=SERVICE, instance=instance, trigger="watch", violation_id=violation_id, policy_id=policy_id,
        policy=policy, config_type=v.config_type, path=v.path, severity=severity, state=state,
        message=summary(policy, message, v.path, v.device, matches, count, state), matches=matches,
        match_count=count, since=since, introduced_by=introduced, fixed_by=fixed, resolution=resolution,
    )


def resolve(v: FileVersion, o: OpenViolation, resolution: Resolution, now: datetime, instance: str) -> ConfigViolation:
    """The resolved event of open violation ``o``; fixed by ``v`` unless the policy itself went away."""
    fixed = None if resolution == "policy" else v.ref
    return _event(v, o.id, event_ids(o.id)[1], o.policy_id, o.policy_name, o.severity, o.message, RESOLVED,
                  o.matches, o.match_count, o.opened_at, o.introduced_by, now, instance, fixed, resolution)


def decide(v: FileVersion, results: list[PolicyResult] | None, open_: list[OpenViolation], now: datetime,
           instance: str, gone: Resolution | None = None, only: uuid.UUID | None = None,
           cleared: Resolution = "fixed") -> Plan:
    """The plan for version ``v`` of a file given the applicable policies' ``results`` and the
    file's open violations. ``gone`` (deleted or moved) resolves them all; ``results`` None (a
    version that did not parse) decides nothing; ``only`` limits the plan to one policy;
    ``cleared`` is the resolution of a violation that no longer matches (``policy`` when the
    policies changed rather than the file)."""
    plan = Plan()
    if gone is None and results is None:
        return plan
    by_policy = {o.policy_id: o for o in open_ if only is None or o.policy_id == only}
    for r in results or []:
        if only is not None and r.policy_id != only:
            continue
        o = by_policy.pop(r.policy_id, None)
        if gone is not None:
            if o is not None:
                by_policy[r.policy_id] = o
            continue
        matches, count = r.found[:MAX_MATCHES], len(r.found)
        if o is None and count:
            vid = uuid.uuid4()
            plan.opened.append(_event(v, vid, event_ids(vid)[0], r.policy_id, r.name, r.severity, r.message, FIRED,
                                      matches, count, v.ref.time, v.ref, now, instance))
        elif o is not None and count:
            if matches != o.matches or count != o.match_count:
                plan.updated.append(Update(id=o.id, matches=matches, match_count=count))
        elif o is not None:
            plan.resolved.append(resolve(v, o, cleared, now, instance))
    for o in by_policy.values():
        plan.resolved.append(resolve(v, o, gone or "policy", now, instance))
    return plan
