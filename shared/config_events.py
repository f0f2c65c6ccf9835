"""Configuration events: one ``ConfigChanged`` per change of one watched file, tagged ``config``."""

from __future__ import annotations

from typing import Any

from shared.envelope import Event, UtcDatetime
from shared.payloads.config import ChangeType, Impact, Redaction, WatchMode


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
