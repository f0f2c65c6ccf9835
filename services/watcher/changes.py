"""The pure decision: what the watcher last published about a file (``Known``), what it sees
now (``Seen``) -> a ``ConfigChanged`` event, or None. The service only observes and publishes.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec

from services.watcher.configtypes import config_type as declared
from services.watcher.impact import Side, assess
from services.watcher.redact import DEFAULT_RULES, Rule, redact
from services.watcher.remote import FileStat
from shared.config_events import ChangeType, ConfigChanged, WatchMode
from shared.envelope import Trigger
from shared.errors import ParseError
from shared.events import DeviceSpec

SERVICE = "watcher"
EVENT_NS = uuid.UUID("5b8f4c1e-2f7d-4f43-9a51-6f0c1d7e9a11")
MTIME_PLAUSIBLE_S = 5.0  # an mtime this close before the inotify event is taken as the write time


class Known(msgspec.Struct, kw_only=True):
    """What was last published about one file; kept in the watch-state KV bucket (without text/parsed)."""

    device_id: uuid.UUID
    path: str
    config_type: str
    sha256: str
    size: int
    mtime: float
    owner: str
    mode: str
    seq: int = 0  # stream sequence of the event that published this version
    text: str | None = None  # redacted content of that version, when loaded
    parsed: dict[str, Any] | None = None
    parse_error: str | None = None


@dataclass(frozen=True)
class Seen:
    """A file as it is now: metadata and hash, with the bytes when within the content limit."""

    stat: FileStat
    content: bytes | None


@dataclass(frozen=True)
class Context:
    device: DeviceSpec
    instance: str
    watch_mode: WatchMode
    trigger: Trigger
    now: float  # epoch seconds
    content_limit: int = 1024 * 1024
    redact: bool = True
    rules: tuple[Rule, ...] = DEFAULT_RULES


@dataclass(frozen=True)
class Item:
    """One path to decide on: its config type, the known and seen versions, when it was noticed."""

    config_type: str
    path: str
    old: Known | None
    new: Seen | None
    noticed_at: float | None = None  # epoch seconds of the first inotify event; None for scans


@dataclass
class Content:
    text: str | None = None
    binary: bool = False
    truncated: bool = False
    parsed: dict[str, Any] | None = None
    parse_error: str | None = None
    redactions: list = field(default_factory=list)


def _parse(parser, text: str, path: str) -> tuple[dict[str, Any] | None, str | None]:
    try:
        return parser(text, path), None
    except ParseError as exc:
        return None, f"line {exc.line_no}: {exc.message}" if exc.line_no else exc.message
    except Exception as exc:  # a parser bug must not lose the change
        return None, f"{type(exc).__name__}: {exc}"


def read_content(config_type: str, path: str, data: bytes | None, ctx: Context) -> Content:
    """Decode, redact and parse one file's bytes (None: larger than the content limit).

    Redaction reads the original text's structure; the parsed data is that of the redacted
    text, so it holds no more than the stored content does (no secret). When only the redacted
    text fails to parse, the parsed data is left out and the error says so."""
    if data is None:
        return Content(truncated=True)
    if b"\0" in data:
        return Content(binary=True)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return Content(binary=True)
    out = Content()
    out.text, out.redactions = redact(text, ctx.rules, config_type, path) if ctx.redact else (text, [])
    parser = declared(config_type).parse
    if parser is not None:
        out.parsed, out.parse_error = _parse(parser, out.text, path)
        if out.parse_error is not None and out.text != text and _parse(parser, text, path)[1] is None:
            out.parse_error = f"the redacted content no longer parses ({out.parse_error}); parsed data left out"
    return out


def _utc(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


def _latency_ms(item: Item, now: float) -> float | None:
    """Time from the change to its decision, for changes an inotify event reported; None for
    baselines, rescans and polls, where the file's age is not a detection latency. The start is the
    file's mtime when it is trustworthy (not in the future, not long before the inotify event),
    else when the event was noticed."""
    if item.noticed_at is None:
        return None
    start = item.noticed_at
    mtime = item.new.stat.mtime if item.new is not None else None
    if mtime is not None and item.noticed_at - MTIME_PLAUSIBLE_S <= mtime <= item.noticed_at:
        start = mtime
    return round(max(0.0, now - start) * 1000, 1)


def event_id(device_id: uuid.UUID, *parts: object) -> uuid.UUID:
    """Deterministic, so two observers (or a restart after a lost ack) publish one message id."""
    return uuid.uuid5(EVENT_NS, "\x00".join([str(device_id), *map(str, parts)]))


def _event(item: Item, change: ChangeType, ctx: Context, old_path: str | None = None,
           old: Known | None = None) -> ConfigChanged:
    old = old if old is not None else item.old
    new = item.new
    content = read_content(item.config_type, item.path, new.content, ctx) if new else Content()
    old_side = Side(parsed=old.parsed, text=old.text, mode=old.mode, owner=old.owner,
                    parse_error=old.parse_error) if old else Side(text="")
    new_side = Side(parsed=content.parsed, text=content.text, mode=new.stat.mode, owner=new.stat.owner,
                    parse_error=content.parse_error) if new else Side(text="")
    impact = assess(item.config_type, item.path, change, old_side, new_side, old_path)
    st = new.stat if new else None
    eid = event_id(ctx.device.id, item.config_type, item.path, change, old_path, old.sha256 if old else None,
                   st.sha256 if st else None, st.mtime if st else old.mtime if old else None,
                   st.mode if st else None, st.owner if st else None)
    warnings = [f"parse error: {content.parse_error}"] if content.parse_error else []
    return ConfigChanged(
        event_id=eid, operation_id=eid, device_id=ctx.device.id, device=ctx.device.name,
        occurred_at=datetime.fromtimestamp(ctx.now, UTC), service=SERVICE, instance=ctx.instance,
        trigger=ctx.trigger, status="partial" if content.parse_error else "success", warnings=warnings,
        data_size_bytes=st.size if st else 0,
        config_type=item.config_type, path=item.path, change_type=change, old_path=old_path,
        sha256=st.sha256 if st else None, previous_sha256=old.sha256 if old else None,
        size=st.size if st else None, mtime=_utc(st.mtime) if st else None,
        owner=st.owner if st else None, mode=st.mode if st else None,
        content=content.text, content_truncated=content.truncated, binary=content.binary,
        content_limit=ctx.content_limit, parsed=content.parsed, parse_error=content.parse_error,
        impact=impact, redactions=content.redactions, watch_mode=ctx.watch_mode,
        detection_latency_ms=_latency_ms(item, ctx.now),
    )


def diff(item: Item, ctx: Context) -> ConfigChanged | None:
    """The change from ``item.old`` to ``item.new``, or None when nothing that matters changed
    (same hash, mode and owner: a touch or a rewrite with the same bytes is not a change)."""
    old, new = item.old, item.new
    if old is None and new is None:
        return None
    if old is None:
        return _event(item, "CREATE", ctx)
    if new is None:
        return _event(item, "DELETE", ctx)
    st = new.stat
    if (st.sha256, st.mode, st.owner) == (old.sha256, old.mode, old.owner):
        return None
    return _event(item, "MODIFY", ctx)


def decide(items: list[Item], ctx: Context) -> list[ConfigChanged]:
    """Changes for a batch of paths noticed together; a deletion and a creation of the same
    bytes in one batch are one MOVE (``old_path`` -> ``path``)."""
    deleted: dict[str, list[Item]] = {}
    for it in items:
        if it.old is not None and it.new is None:
            deleted.setdefault(it.old.sha256, []).append(it)
    moved_from: set[str] = set()
    out: list[ConfigChanged] = []
    for it in items:
        if it.old is None and it.new is not None and deleted.get(it.new.stat.sha256):
            src = deleted[it.new.stat.sha256].pop(0)
            moved_from.add(src.path)
            old = src.old
            assert old is not None
            out.append(_event(it, "MOVE", ctx, old_path=src.path, old=old))
    for it in items:
        if it.path in moved_from or (it.old is None and any(e.path == it.path for e in out)):
            continue
        ev = diff(it, ctx)
        if ev is not None:
            out.append(ev)
    return out


def known_after(ev: ConfigChanged, seq: int) -> Known | None:
    """What is known about the file once ``ev`` is published (None after a DELETE)."""
    if ev.change_type == "DELETE" or ev.sha256 is None or ev.device_id is None:
        return None
    return Known(
        device_id=ev.device_id, path=ev.path, config_type=ev.config_type, sha256=ev.sha256, size=ev.size or 0,
        mtime=ev.mtime.timestamp() if ev.mtime else 0.0, owner=ev.owner or "", mode=ev.mode or "",
        seq=seq, text=ev.content, parsed=ev.parsed, parse_error=ev.parse_error,
    )
