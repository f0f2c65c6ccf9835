"""Configuration policy violations: ``ConfigViolation`` (tag ``config_violation``), fired when a
policy's JSONPath condition first matches a watched file's parsed data and resolved when a later
version no longer matches (or the file is deleted, or the policy stops applying). Published on the
alert subject ``<prefix>.alert.<device>.<policy>``, beside the rule alerts.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any, Literal, get_args

import msgspec

from shared.envelope import Event, UtcDatetime

Severity = Literal["info", "low", "medium", "high", "critical"]
SEVERITIES: tuple[str, ...] = get_args(Severity)
ViolationState = Literal["fired", "resolved"]
# fixed: a later version no longer matches; deleted/moved: the file is gone from this path;
# policy: the policy was disabled, deleted, changed or no longer applies to the device.
Resolution = Literal["fixed", "deleted", "moved", "policy"]


class ConfigRef(msgspec.Struct, kw_only=True):
    """One version of one file: the change event, the snapshot the writer stores it as, its time and hash."""

    event_id: uuid.UUID
    snapshot_id: uuid.UUID
    time: UtcDatetime
    change_type: str
    sha256: str | None = None


class ConfigViolation(Event, kw_only=True, tag="config_violation"):
    """A policy matched a file (``fired``) or stopped matching it (``resolved``).

    ``matches`` are the values the policy's JSONPath returned (at most 20; ``match_count`` is
    the total). ``introduced_by`` is the version that first matched; ``fixed_by`` (resolved only)
    the version that no longer does, None when the policy itself went away.
    """

    violation_id: uuid.UUID
    policy_id: uuid.UUID
    policy: str
    config_type: str
    path: str
    severity: Severity
    state: ViolationState
    message: str
    matches: list[Any] = []
    match_count: int = 0
    since: UtcDatetime
    introduced_by: ConfigRef
    fixed_by: ConfigRef | None = None
    resolution: Resolution | None = None


def path_key(path: str) -> uuid.UUID:
    """The key of a file path in the configuration tables: its MD5 as a UUID, what PostgreSQL's
    ``md5(path)::uuid`` gives (paths reach 4 KiB, past a btree entry's limit)."""
    return uuid.UUID(hashlib.md5(path.encode(), usedforsecurity=False).hexdigest())


POLICY_EVENTS: tuple[type[Event], ...] = (ConfigViolation,)
