"""What the watcher runs on a device, and how it reads the output.

Everything is an argv list (joined with ``shlex.join`` by the transport), and every program is
either a standard tool (``inotifywait``, ``find``, ``stat``, ``sha256sum``, ``base64``) or a
script passed as an argument to ``python3 -c`` / ``sh -c``: nothing is installed on the device.

Output is NUL-separated, so paths with spaces, quotes or newlines come through intact:

* watch streams print ``E\\0<path>\\0<EVENT,EVENT>\\0`` per inotify event, and after the events
  of a batch, for each matching file they name, its state as read then:
  ``P\\0<path>\\0<size> <mtime> <owner> <octal mode>\\0<sha256 or empty>\\0<base64 content or ->\\0``
  (an empty metadata field: gone, or not a regular file; ``-``: larger than the limit; an empty
  sha256 is that of the content);
* scans and probes print tagged records: ``D\\0<dir>\\0`` (an existing directory),
  ``F\\0<path>\\0<size> <mtime> <owner> <octal mode>\\0<sha256 or empty>\\0`` (a regular file),
  optionally followed by ``C\\0<base64 content>\\0``, and ``G\\0<path>\\0`` (gone, or not a file).
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field

from services.watcher.scripts import EVENT_SH, INOTIFY_PY, KEEPALIVE_SH, PIPE_SH, PROBE_SH, SCAN_PY, SCAN_SH

# q_overflow must be listed: inotifywait prints only the events named here, so without it a full
# kernel queue would drop events silently instead of triggering a rescan.
WATCH_EVENTS = "close_write,create,delete,moved_to,moved_from,attrib,delete_self,move_self,q_overflow"
ESTABLISHED = b"Watches established."


def watch_argv(mode: str, program: str, recursive: bool, dirs: list[str], *, python: str | None,
               file_regex: str, ignore: str | None, limit: int) -> list[str]:
    """The long-running watch command over ``dirs`` (all recursive, or none). Its stream carries
    the events and, for each matching file they name, its metadata, hash and content (``limit``
    bytes at most): read by ``python`` when the device has it, else by sh, stat and base64."""
    if mode == "inotifywait":
        cmd = [program, "-m", "--no-newline", "--format", "%w%f%0%e%0", "-e", WATCH_EVENTS]
        cmd += (["-r"] if recursive else []) + ["--", *dirs]
        if python is None:
            cmd = ["sh", "-c", PIPE_SH, "sh", EVENT_SH, file_regex, str(limit), *cmd]
        else:
            cmd = [python, "-c", INOTIFY_PY, json.dumps({"files": file_regex, "ignore": ignore, "limit": limit}),
                   *cmd]
    else:
        conf = json.dumps({"files": file_regex, "ignore": ignore, "limit": limit})
        cmd = [program, "-c", INOTIFY_PY, conf] + [a for d in dirs for a in ("-r" if recursive else "-n", d)]
    return ["sh", "-c", KEEPALIVE_SH, "sh", *cmd]


def scan_argv(python: str | None, file_regex: str, dir_regex: str, exists: list[str],
              bases: list[tuple[str, int]]) -> list[str]:
    """List matching files (with sha256) and directories below ``bases``; report which of ``exists`` exist."""
    if python:
        q = {"mode": "scan", "files": file_regex, "dirs": dir_regex, "exists": exists, "bases": bases}
        return [python, "-c", SCAN_PY, json.dumps(q)]
    return ["sh", "-c", SCAN_SH, "sh", file_regex, dir_regex, *exists, "--",
            *[a for base, depth in bases for a in (str(depth), base)]]


def probe_argv(python: str | None, paths: list[str], limit: int) -> list[str]:
    """Metadata, sha256 and (up to ``limit`` bytes) content of each path."""
    if python:
        return [python, "-c", SCAN_PY, json.dumps({"mode": "probe", "paths": paths, "limit": limit})]
    return ["sh", "-c", PROBE_SH, "sh", str(limit), *paths]


@dataclass(frozen=True)
class FileStat:
    """A regular file as seen on the device."""

    path: str
    size: int
    mtime: float
    owner: str
    mode: str  # octal, 4 digits
    sha256: str


@dataclass
class Listing:
    dirs: set[str] = field(default_factory=set)
    files: dict[str, FileStat] = field(default_factory=dict)
    contents: dict[str, bytes] = field(default_factory=dict)  # absent: larger than the limit
    gone: set[str] = field(default_factory=set)


def _text(b: bytes) -> str:
    return b.decode("utf-8", errors="surrogateescape")


def parse_records(data: bytes) -> Listing:
    """Parse scan/probe output; a record cut short at the end is ignored."""
    tokens = data.split(b"\0")
    out = Listing()
    i, last = 0, None
    while i < len(tokens) - 1:
        tag = tokens[i]
        if tag == b"D":
            out.dirs.add(_text(tokens[i + 1]))
            i += 2
        elif tag == b"G":
            out.gone.add(_text(tokens[i + 1]))
            i += 2
        elif tag == b"F" and i + 3 < len(tokens):
            path, meta, sha = _text(tokens[i + 1]), _text(tokens[i + 2]), tokens[i + 3].decode()
            size, mtime, rest = meta.split(" ", 2)
            owner, mode = rest.rsplit(" ", 1)
            last = FileStat(path, int(size), float(mtime), owner, mode.zfill(4), sha)
            out.files[path] = last
            i += 4
        elif tag == b"C" and last is not None:
            content = base64.b64decode(tokens[i + 1])
            out.contents[last.path] = content
            # size and hash of the bytes actually read, so content and hash always agree
            out.files[last.path] = FileStat(last.path, len(content), last.mtime, last.owner, last.mode,
                                            hashlib.sha256(content).hexdigest())
            i += 2
        else:
            break
    return out


@dataclass(frozen=True)
class Event:
    """One inotify event of a watch stream: the path and the event names."""

    path: str
    flags: frozenset[str]


@dataclass(frozen=True)
class Probed:
    """A file's state read by the watch program right after its events (``stat`` None: gone)."""

    path: str
    stat: FileStat | None
    content: bytes | None  # None: larger than the limit, or gone


class StreamError(ValueError):
    """The watch stream holds something that is neither an event nor a record."""


def _probed(path: bytes, meta: bytes, sha: bytes, content: bytes) -> Probed:
    p = _text(path)
    if not meta:
        return Probed(p, None, None)
    size, mtime, rest = _text(meta).split(" ", 2)
    owner, mode = rest.rsplit(" ", 1)
    data = None if content == b"-" else base64.b64decode(content)
    if data is not None:  # size and hash of the bytes actually read
        return Probed(p, FileStat(p, len(data), float(mtime), owner, mode.zfill(4), hashlib.sha256(data).hexdigest()),
                      data)
    return Probed(p, FileStat(p, int(size), float(mtime), owner, mode.zfill(4), sha.decode()), None)


def parse_stream(buf: bytes) -> tuple[list[Event | Probed], bytes]:
    """Complete events and records from a watch stream buffer, and the incomplete rest."""
    tokens = buf.split(b"\0")
    complete = len(tokens) - 1
    items: list[Event | Probed] = []
    i = 0
    while i < complete:
        tag = tokens[i]
        if tag == b"E":
            if i + 3 > complete:
                break
            path = _text(tokens[i + 1]).rstrip("/") or ("/" if tokens[i + 1] else "")
            items.append(Event(path, frozenset(tokens[i + 2].decode("ascii", "replace").split(","))))
            i += 3
        elif tag == b"P":
            if i + 5 > complete:
                break
            try:
                items.append(_probed(*tokens[i + 1:i + 5]))
            except (ValueError, UnicodeDecodeError) as exc:
                raise StreamError(f"unreadable file record in the watch stream: {exc}") from None
            i += 5
        else:
            raise StreamError(f"unexpected data in the watch stream: {tag[:60]!r}")
    return items, b"\0".join(tokens[i:])
