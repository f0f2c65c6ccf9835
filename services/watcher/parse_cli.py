"""`infrawatch parse-config <config_type> FILE...`: parse configuration files as the watcher does
and print, per file, the parsed data and the impact of creating it, as JSON."""

from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path

import msgspec

from services.watcher.changes import Context, Item, Seen, diff
from services.watcher.configtypes import CONFIG_TYPES
from services.watcher.remote import FileStat
from shared.events import DeviceSpec

_LOCAL = DeviceSpec(id=uuid.UUID(int=0), name="local", transport="local")


def describe(config_type: str, path: Path, data: bytes, mtime: float = 0.0) -> dict:
    """What the watcher would publish for this file appearing: parsed data, impact, redactions."""
    import hashlib

    st = FileStat(str(path), len(data), mtime, "-", "0644", hashlib.sha256(data).hexdigest())
    ctx = Context(device=_LOCAL, instance="parse-config", watch_mode="poll", trigger="api", now=time.time())
    ev = diff(Item(config_type, str(path), None, Seen(st, data)), ctx)
    assert ev is not None
    impact = msgspec.to_builtins(ev.impact) if ev.impact else None
    if impact:
        impact.pop("unified_diff", None)
    return {
        "path": str(path), "config_type": config_type, "sha256": ev.sha256, "parsed": ev.parsed,
        "parse_error": ev.parse_error, "binary": ev.binary, "redactions": msgspec.to_builtins(ev.redactions),
        "impact": impact,
    }


def parse_config_files(config_type: str, files: list[Path]) -> int:
    """Print one JSON document per file on stdout; errors on stderr.

    Returns 0 when every file parsed, 1 when one did not (or could not be read). A config type
    without a parser is allowed: its files have no parsed data.
    """
    parsed = sorted(t.name for t in CONFIG_TYPES.values() if t.parse is not None)
    if config_type not in parsed:
        print(f"note: {config_type!r} has no parser (known: {', '.join(parsed)}); "
              "content and impact only", file=sys.stderr)
    rc = 0
    for path in files:
        try:
            data = path.read_bytes()
        except OSError as exc:
            print(f"{path}: cannot read: {exc.strerror or exc}", file=sys.stderr)
            rc = 1
            continue
        out = describe(config_type, path, data)
        if out["parse_error"]:
            print(f"{path}: {out['parse_error']}", file=sys.stderr)
            rc = 1
        sys.stdout.write(msgspec.json.format(msgspec.json.encode(out), indent=2).decode() + "\n")
    return rc
