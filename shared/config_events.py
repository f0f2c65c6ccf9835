"""Configuration events: one ``ConfigChanged`` per change of one watched file, tagged ``config``."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from shared.envelope import Event, UtcDatetime

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


class ConfigChanged(Event, kw_only=True, tag="config"):
    """A watched file was created, modified, deleted or moved (``old_path`` is where it was).

    ``sha256`` is of the original bytes (None after a DELETE); ``content`` is the text with
    secrets redacted, absent when the file is binary or larger than ``content_limit``.
    ``parsed`` is the config type's parsed data (None without a parser, or with ``parse_error``).
    """

    config_type: str
    path: str
    change_type: ChangeType
    old_path: str | None = None
    sha256: str | None = None
    previous_sha256: str | None = None
    size: int | None = None
    mtime: UtcDatetime | None = None
    owner: str | None = None
    mode: str | None = None  # octal, e.g. "0644"
    content: str | None = None
    content_truncated: bool = False  # larger than content_limit: hash and metadata only
    binary: bool = False
    content_limit: int = 0
    parsed: dict[str, Any] | None = None
    parse_error: str | None = None
    impact: Impact | None = None
    redactions: list[Redaction] = []
    watch_mode: WatchMode = "poll"
    detection_latency_ms: float | None = None


CONFIG_EVENTS: tuple[type[Event], ...] = (ConfigChanged,)
