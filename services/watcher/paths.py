"""Which files a device's watcher looks at: the default globs of every config type (from
``services.watcher.configtypes``), the device's own globs, glob matching (as regular expressions
that both Python and GNU find accept), and the directories to put inotify watches on."""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field

from services.watcher.configtypes import CONFIG_TYPES

DEFAULT_GLOBS: dict[str, list[str]] = {t.name: list(t.globs) for t in CONFIG_TYPES.values() if t.globs}
UNLIMITED_DEPTH = 64
_WILD = re.compile(r"[*?\[]")


def _is_wild(component: str) -> bool:
    return bool(_WILD.search(component))


def _literal(ch: str) -> str:
    """One literal character as a regex atom valid in Python and POSIX ERE alike."""
    if ch.isalnum() or ch in "/_-":
        return ch
    if ch in "\\^":
        return "\\" + ch
    if ch == "]":
        return "[]]"
    if ch == "[":
        return "\\["
    return f"[{ch}]"


def _component_regex(comp: str) -> str:
    out, i = [], 0
    while i < len(comp):
        ch = comp[i]
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            start = i + 1 + (comp[i + 1:i + 2] in ("!", "^"))
            end = comp.find("]", start + 1)
            if end == -1:
                out.append(_literal(ch))
            else:
                body = comp[start:end].replace("\\", "")
                out.append("[" + ("^" if start > i + 1 else "") + body + "]")
                i = end
        else:
            out.append(_literal(ch))
        i += 1
    return "".join(out)


def glob_regex(glob: str) -> str:
    """The regex of one absolute glob: ``*``, ``?`` and ``[...]`` stay within a path component,
    ``**`` matches any depth (at least one component when last)."""
    comps = [c for c in glob.split("/") if c]
    parts: list[str] = []
    for i, comp in enumerate(comps):
        last = i == len(comps) - 1
        if comp == "**":
            parts.append("/([^/]|/)+" if last else "(/[^/]+)*")
        else:
            parts.append("/" + _component_regex(comp))
    return "".join(parts) or "/"


def dir_regexes(glob: str) -> list[str]:
    """Regexes of the directories under a glob's literal base that may hold its files."""
    comps = [c for c in glob.split("/") if c]
    base_len = _base_len(comps)
    out = []
    for n in range(base_len + 1, len(comps)):
        if "**" in comps[:n]:
            break
        out.append(glob_regex("/" + "/".join(comps[:n])))
    return out


def _base_len(comps: list[str]) -> int:
    n = 0
    for c in comps[:-1]:
        if _is_wild(c):
            break
        n += 1
    return n


@dataclass(frozen=True)
class Glob:
    config_type: str
    pattern: str
    regex: re.Pattern[str]
    base: str  # the longest literal directory prefix
    depth: int  # how deep below base its files can be
    recursive: bool  # contains ** : watch the whole tree below base


def make_glob(config_type: str, pattern: str) -> Glob:
    if not pattern.startswith("/"):
        raise ValueError(f"watch path {pattern!r} of {config_type!r} is not absolute")
    pattern = posixpath.normpath(pattern)
    comps = [c for c in pattern.split("/") if c]
    n = _base_len(comps)
    base = "/" + "/".join(comps[:n])
    recursive = "**" in comps
    depth = UNLIMITED_DEPTH if recursive else len(comps) - n
    return Glob(config_type, pattern, re.compile(glob_regex(pattern)), base, depth, recursive)


@dataclass
class WatchSpec:
    """Every glob of one device, in match order: a device's own config types first, then the defaults."""

    globs: list[Glob]
    ignore: re.Pattern[str] | None = None
    file_regex: str = field(init=False)
    dir_regex: str = field(init=False)

    def __post_init__(self) -> None:
        self.file_regex = "(" + "|".join(g.regex.pattern for g in self.globs) + ")"
        dirs = list(dict.fromkeys(r for g in self.globs for r in dir_regexes(g.pattern)))
        self.dir_regex = "(" + "|".join(dirs) + ")" if dirs else "(/[.]never[.]/)"

    def config_type(self, path: str) -> str | None:
        """The config type a file belongs to, or None when no glob matches (or it is ignored)."""
        if self.ignore is not None and self.ignore.search(path):
            return None
        for g in self.globs:
            if g.regex.fullmatch(path):
                return g.config_type
        return None

    def bases(self) -> list[tuple[str, int]]:
        """(base directory, depth) to scan, without bases that lie inside a deeper-scanned one."""
        best: dict[str, int] = {}
        for g in self.globs:
            best[g.base] = max(best.get(g.base, 0), g.depth)
        out = []
        for base, depth in sorted(best.items()):
            covered = any(
                other != base and _within(base, other) and _depth_below(other, base) + depth <= d
                for other, d in best.items()
            )
            if not covered:
                out.append((base, depth))
        return out

    def plan(self, existing_dirs: set[str]) -> WatchPlan:
        """Directories to watch, given those that exist on the device: recursive for ``**`` bases,
        otherwise each base and each directory matching a glob's directory part; for a missing
        base, its nearest existing ancestor (so its creation is noticed)."""
        recursive: set[str] = set()
        flat: set[str] = set()
        for g in self.globs:
            if g.base in existing_dirs:
                (recursive if g.recursive else flat).add(g.base)
            else:
                flat.add(_nearest_existing(g.base, existing_dirs))
        for d in existing_dirs:
            if re.fullmatch(self.dir_regex, d):
                flat.add(d)
        recursive = {d for d in recursive if not any(o != d and _within(d, o) for o in recursive)}
        flat = {d for d in flat if not any(_within(d, o) for o in recursive)}
        return WatchPlan(frozenset(recursive), frozenset(flat))

    def ancestors(self) -> list[str]:
        """Every ancestor of every base, to learn which exist."""
        out: set[str] = set()
        for g in self.globs:
            d = g.base
            while True:
                out.add(d)
                if d == "/":
                    break
                d = posixpath.dirname(d)
        return sorted(out)


@dataclass(frozen=True)
class WatchPlan:
    recursive: frozenset[str]
    flat: frozenset[str]

    def __bool__(self) -> bool:
        return bool(self.recursive or self.flat)


def _within(path: str, parent: str) -> bool:
    return parent == "/" or path == parent or path.startswith(parent.rstrip("/") + "/")


def _depth_below(parent: str, path: str) -> int:
    rel = path[len(parent.rstrip("/")):].strip("/")
    return len(rel.split("/")) if rel else 0


def _nearest_existing(path: str, existing: set[str]) -> str:
    while path != "/" and path not in existing:
        path = posixpath.dirname(path)
    return path


def watch_spec(watch_paths: dict[str, list[str]], root_prefix: str = "", ignore: str | None = None) -> WatchSpec:
    """The device's globs (its own types first, then the defaults under ``root_prefix``)."""
    prefix = root_prefix.rstrip("/")
    globs: list[Glob] = []
    for config_type, patterns in watch_paths.items():
        if config_type not in DEFAULT_GLOBS:
            globs += [make_glob(config_type, p) for p in patterns]
    for config_type, patterns in DEFAULT_GLOBS.items():
        globs += [make_glob(config_type, prefix + p) for p in patterns]
        globs += [make_glob(config_type, p) for p in watch_paths.get(config_type, [])]
    return WatchSpec(globs, re.compile(ignore) if ignore else None)
