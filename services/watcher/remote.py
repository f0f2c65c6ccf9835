"""What the watcher runs on a device, and how it reads the output.

Everything is an argv list (joined with ``shlex.join`` by the transport), and every program is
either a standard tool (``inotifywait``, ``find``, ``stat``, ``sha256sum``, ``base64``) or a
script passed as an argument to ``python3 -c`` / ``sh -c``: nothing is installed on the device.

Output is NUL-separated, so paths with spaces, quotes or newlines come through intact:

* watch streams print ``<path>\\0<EVENT,EVENT>\\0`` per inotify event (inotifywait's
  ``--format '%w%f%0%e%0'``; the python loop prints the same);
* scans and probes print tagged records: ``D\\0<dir>\\0`` (an existing directory),
  ``F\\0<path>\\0<size> <mtime> <owner> <octal mode>\\0<sha256 or empty>\\0`` (a regular file),
  optionally followed by ``C\\0<base64 content>\\0``, and ``G\\0<path>\\0`` (gone, or not a file).
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field

# q_overflow must be listed: inotifywait prints only the events named here, so without it a full
# kernel queue would drop events silently instead of triggering a rescan.
WATCH_EVENTS = "close_write,create,delete,moved_to,moved_from,attrib,delete_self,move_self,q_overflow"
ESTABLISHED = b"Watches established."

# Runs "$@" with stdin from /dev/null and stops it when our stdin (the SSH channel) closes:
# without a pty, sshd leaves a command running after its channel is gone.
KEEPALIVE_SH = r"""exec 3<&0 0</dev/null
"$@" 3<&- & p=$!
{ cat <&3 >/dev/null 2>&1; kill "$p" 2>/dev/null; } &
w=$!
exec 3<&-
wait "$p"; s=$?
kill "$w" 2>/dev/null
exit "$s"
"""

# The inotify loop for devices without inotifywait: args are pairs "-r|-n" DIR.
INOTIFY_PY = r"""
import ctypes, ctypes.util, os, struct, sys
libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
NAMES = {0x4: "ATTRIB", 0x8: "CLOSE_WRITE", 0x40: "MOVED_FROM", 0x80: "MOVED_TO", 0x100: "CREATE",
         0x200: "DELETE", 0x400: "DELETE_SELF", 0x800: "MOVE_SELF", 0x4000: "Q_OVERFLOW", 0x40000000: "ISDIR"}
MASK = 0x4 | 0x8 | 0x40 | 0x80 | 0x100 | 0x200 | 0x400 | 0x800
fd = libc.inotify_init1(0o2000000)
if fd < 0:
    sys.exit("inotify_init1: " + os.strerror(ctypes.get_errno()))
wds = {}
def add(path, rec):
    wd = libc.inotify_add_watch(fd, path, MASK)
    if wd < 0:
        sys.stderr.write("cannot watch %r: %s\n" % (path, os.strerror(ctypes.get_errno())))
        return
    wds[wd] = (path, rec)
    if rec:
        try:
            entries = list(os.scandir(path))
        except OSError:
            return
        for e in entries:
            if e.is_dir(follow_symlinks=False):
                add(e.path, True)
args = sys.argv[1:]
for i in range(0, len(args) - 1, 2):
    add(os.fsencode(args[i + 1]), args[i] == "-r")
sys.stderr.write("Watches established.\n")
sys.stderr.flush()
out = sys.stdout.buffer
while True:
    data = os.read(fd, 1 << 16)
    i, buf = 0, []
    while i + 16 <= len(data):
        wd, m, _, n = struct.unpack_from("iIII", data, i)
        name = data[i + 16:i + 16 + n].rstrip(b"\0")
        i += 16 + n
        if m & 0x4000:
            buf.append(b"\0Q_OVERFLOW\0")
            continue
        w = wds.get(wd)
        if w is None:
            continue
        if m & 0x8000:
            del wds[wd]
            continue
        p = os.path.join(w[0], name) if name else w[0]
        if w[1] and m & 0x40000000 and m & 0x180:
            add(p, True)
        buf.append(p + b"\0" + ",".join(v for k, v in NAMES.items() if m & k).encode() + b"\0")
    out.write(b"".join(buf))
    out.flush()
"""

# Scanner and prober with python3: argv[1] is a JSON request (see scan_argv / probe_argv).
SCAN_PY = r"""
import base64, hashlib, json, os, pwd, re, stat, sys
q = json.loads(sys.argv[1])
out = sys.stdout.buffer
users = {}
def owner(uid):
    if uid not in users:
        try:
            users[uid] = pwd.getpwuid(uid).pw_name
        except KeyError:
            users[uid] = str(uid)
    return users[uid]
def put(*fields):
    out.write(b"".join((f if isinstance(f, bytes) else os.fsencode(f)) + b"\0" for f in fields))
def record(p, limit, hashed):
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        put("G", p)
        return
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            put("G", p)
            return
        h, n = hashlib.sha256(), 0
        keep = [] if 0 <= st.st_size <= limit else None
        if hashed or keep is not None:
            while True:
                b = os.read(fd, 1 << 20)
                if not b:
                    break
                h.update(b)
                n += len(b)
                if keep is not None:
                    keep.append(b)
                    if n > limit:
                        keep = None
        ns = st.st_mtime_ns
        meta = "%d %d.%09d %s %o" % (st.st_size, ns // 10**9, ns % 10**9, owner(st.st_uid), stat.S_IMODE(st.st_mode))
        put("F", p, meta, h.hexdigest() if hashed or keep is not None else "")
        if keep is not None:
            put("C", base64.b64encode(b"".join(keep)))
    except OSError:
        put("G", p)
    finally:
        os.close(fd)
if q["mode"] == "probe":
    for p in q["paths"]:
        record(p, q["limit"], True)
else:
    fre, dre = re.compile(q["files"]), re.compile(q["dirs"])
    for d in q["exists"]:
        if os.path.isdir(d):
            put("D", d)
    for base, depth in q["bases"]:
        if not os.path.isdir(base):
            continue
        for root, dirs, files in os.walk(base):
            rel = root[len(base):].strip("/")
            level = rel.count("/") + 1 if rel else 0
            if level + 1 < depth:
                for d in dirs:
                    p = os.path.join(root, d)
                    if dre.fullmatch(p):
                        put("D", p)
            else:
                dirs[:] = []
            for f in files:
                p = os.path.join(root, f)
                if fre.fullmatch(p):
                    record(p, -1, True)
    out.flush()
"""

# The same with GNU find and coreutils, for devices without python3:
# args: FILE_REGEX DIR_REGEX DIR... -- DEPTH BASE [DEPTH BASE ...]
SCAN_SH = r"""fre=$1 dre=$2; shift 2
while [ $# -gt 0 ] && [ "$1" != -- ]; do [ -d "$1" ] && printf 'D\0%s\0' "$1"; shift; done
[ $# -gt 0 ] && shift
while [ $# -ge 2 ]; do
  depth=$1 base=$2; shift 2
  [ -d "$base" ] || continue
  find "$base" -mindepth 1 -maxdepth "$((depth - 1))" -regextype posix-extended -type d -regex "$dre" \
    -printf 'D\0%p\0' 2>/dev/null
  find "$base" -mindepth 1 -maxdepth "$depth" -regextype posix-extended -regex "$fre" -xtype f -exec sh -c '
    for f do
      m=$(stat -L -c "%s %.9Y %U %a" -- "$f" 2>/dev/null) || continue
      h=$(sha256sum < "$f" 2>/dev/null) || continue
      printf "F\0%s\0%s\0%s\0" "$f" "$m" "${h%% *}"
    done' sh {} + 2>/dev/null
done
exit 0
"""

# args: LIMIT PATH...
PROBE_SH = r"""l=$1; shift
for f do
  if [ -f "$f" ] && m=$(stat -L -c '%s %.9Y %U %a' -- "$f" 2>/dev/null); then
    if [ "${m%% *}" -le "$l" ]; then
      if c=$(base64 -w0 < "$f" 2>/dev/null); then printf 'F\0%s\0%s\0\0C\0%s\0' "$f" "$m" "$c"
      else printf 'G\0%s\0' "$f"; fi
    elif h=$(sha256sum < "$f" 2>/dev/null); then printf 'F\0%s\0%s\0%s\0' "$f" "$m" "${h%% *}"
    else printf 'G\0%s\0' "$f"; fi
  else printf 'G\0%s\0' "$f"; fi
done
exit 0
"""


def watch_argv(mode: str, program: str, recursive: bool, dirs: list[str]) -> list[str]:
    """The long-running watch command over ``dirs`` (all recursive, or none)."""
    if mode == "inotifywait":
        cmd = [program, "-m", "--no-newline", "--format", "%w%f%0%e%0", "-e", WATCH_EVENTS]
        cmd += (["-r"] if recursive else []) + ["--", *dirs]
    else:
        cmd = [program, "-c", INOTIFY_PY] + [a for d in dirs for a in ("-r" if recursive else "-n", d)]
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


def parse_watch_tokens(buf: bytes) -> tuple[list[tuple[str, set[str]]], bytes]:
    """Complete ``path\\0EVENTS\\0`` pairs from a stream buffer, and the incomplete rest."""
    tokens = buf.split(b"\0")
    rest_at = len(tokens) - 1 - ((len(tokens) - 1) % 2)
    pairs = [(_text(tokens[i]).rstrip("/") or "/", set(tokens[i + 1].decode("ascii", "replace").split(",")))
             for i in range(0, rest_at, 2)]
    return pairs, b"\0".join(tokens[rest_at:])
