"""mounts: every mounted filesystem with its source, type, options and whether it is read-only.

One command, ``cat /proc/self/mountinfo`` (Linux 2.6.26+): the mounts of the login's mount
namespace. A line is ``id parent major:minor root mount-point options [optional fields...] -
fstype source super-options``; space, tab, newline and backslash in paths are written as octal
escapes (``\\040``). A line that does not have that shape is skipped with a warning.
"""

from __future__ import annotations

import re

from shared.datatypes.mounts.payload import Mount, Mounts
from shared.datatypes.parsing import ParseError, ParseResult

NAME = "mounts"
ARGV = ["cat", "/proc/self/mountinfo"]
TIMEOUT_S = 10.0
RETRIES = 1
INTERVAL_S = 300
FRESHNESS_S = 300

MAX_PATH = 4096
_OCTAL = re.compile(r"\\([0-7]{3})")


def unescape(field: str) -> str:
    """A path as the kernel's ``mangle`` wrote it, with its octal escapes decoded."""
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_line(line: str) -> Mount:
    """One mountinfo line; ParseError when it does not have the documented shape."""
    fields = line.split(" ")
    try:
        sep = fields.index("-", 6)
    except ValueError:
        raise ParseError("no ' - ' separator after the 6 leading fields") from None
    if sep < 6 or len(fields) < sep + 4:
        raise ParseError("expected 6 fields, ' - ', then fstype, source and super options")
    mount_id, parent_id, device, root, mount_point, options = fields[:6]
    if not (mount_id.isdigit() and parent_id.isdigit() and re.fullmatch(r"\d+:\d+", device)):
        raise ParseError("mount id, parent id or major:minor is not numeric")
    fs_type, source, super_options = fields[sep + 1], fields[sep + 2], " ".join(fields[sep + 3:])
    root, mount_point = unescape(root), unescape(mount_point)
    if len(mount_point) > MAX_PATH or len(root) > MAX_PATH:
        raise ParseError(f"path longer than {MAX_PATH} characters")
    opts = options.split(",")
    return Mount(
        mount_id=int(mount_id), parent_id=int(parent_id), device=device, root=root, mount_point=mount_point,
        fs_type=unescape(fs_type), source=unescape(source), read_only="ro" in opts, options=opts,
        super_options=super_options.split(",") if super_options else [],
        propagation=[f for f in fields[6:sep] if f],
    )


def parse(text: str) -> ParseResult[Mounts]:
    mounts: list[Mount] = []
    warnings: list[str] = []
    seen: set[int] = set()
    first_bad: ParseError | None = None
    for no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            mount = parse_line(line)
        except ParseError as exc:
            bad = ParseError(exc.message, line[:200], no)
            first_bad = first_bad or bad
            warnings.append(f"skipped: {bad}")
            continue
        if mount.mount_id in seen:
            warnings.append(f"skipped: mount id {mount.mount_id} listed twice (line {no})")
            continue
        seen.add(mount.mount_id)
        mounts.append(mount)
    if not mounts:
        if first_bad is not None:
            raise ParseError(f"no mount in the output: {first_bad.message}", first_bad.line, first_bad.line_no)
        raise ParseError("no mount in the output (empty)")
    return ParseResult(Mounts(mounts=mounts, read_only=sum(m.read_only for m in mounts)), warnings)
