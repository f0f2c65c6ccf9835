"""Payload parts of a configuration change: impact, structured diff, redactions."""

from __future__ import annotations

from typing import Literal

import msgspec

ChangeType = Literal["CREATE", "MODIFY", "DELETE", "MOVE"]
RiskLevel = Literal["LOW", "MEDIUM", "HIGH", "CRITICAL"]
# inotifywait on the device, a python3 inotify loop on the device, or stat/hash polling
WatchMode = Literal["inotifywait", "python", "poll"]


class DiffSummary(msgspec.Struct, kw_only=True):
    """Keys of the parsed data (dotted paths) added, removed or changed, plus file metadata changed."""

    added: list[str] = []
    removed: list[str] = []
    changed: list[str] = []
    metadata: list[str] = []  # "mode", "owner"


class Impact(msgspec.Struct, kw_only=True):
    """What a change affects and what has to happen for it to take effect."""

    affected_services: list[str] = []
    dependencies: list[str] = []  # what the affected services depend on (upstreams, units, services)
    requires_restart: bool = False
    restart_services: list[str] = []
    requires_reload: bool = False
    reload_services: list[str] = []
    actions: list[str] = []  # e.g. "nginx -s reload", "systemctl daemon-reload"
    risk_level: RiskLevel = "MEDIUM"
    risk_rule: str = ""
    confidence: float = 0.5
    summary: DiffSummary = msgspec.field(default_factory=DiffSummary)
    unified_diff: str | None = None  # of the redacted text; None when either side has no text
    unified_diff_truncated: bool = False


class Redaction(msgspec.Struct, kw_only=True):
    """A value hidden from the stored content: where, and the name of what was hidden (never the value)."""

    line: int
    name: str
    rule: str
