"""Structured differences between two parsed configurations (JSON values), as a list of changes.

Each change is ``{"path", "op", "old", "new"}`` with ``op`` one of added, removed, changed. A path
joins object keys with dots (``services.web.image``) and list positions in brackets
(``ports[0]``); a key that is empty or holds ``.``, ``[``, ``]`` or ``"`` is written as
``["a.b"]``. Objects are compared key by key and lists position by position (element ``i`` of one
against element ``i`` of the other, extra elements added or removed): a list reordered shows as
changes at each moved position. Below ``max_depth`` levels two values are compared whole. At most
``max_changes`` changes are listed, in key order; ``truncated`` says when there were more.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 32
MAX_CHANGES = 500
_PLAIN_KEY = re.compile(r'^[^.\[\]"]+$')


def _key(prefix: str, key: str) -> str:
    if _PLAIN_KEY.match(key):
        return f"{prefix}.{key}" if prefix else key
    return f"{prefix}[{json.dumps(key)}]"


class _Collector:
    def __init__(self, max_depth: int, max_changes: int) -> None:
        self.max_depth = max_depth
        self.max_changes = max_changes
        self.changes: list[dict[str, Any]] = []
        self.truncated = False

    def add(self, path: str, op: str, old: Any, new: Any) -> None:
        if len(self.changes) >= self.max_changes:
            self.truncated = True
            return
        self.changes.append({"path": path or "$", "op": op, "old": old, "new": new})

    def walk(self, path: str, old: Any, new: Any, depth: int) -> None:
        if self.truncated:
            return
        if depth < self.max_depth and isinstance(old, dict) and isinstance(new, dict):
            for k in sorted(old.keys() | new.keys()):
                sub = _key(path, str(k))
                if k not in new:
                    self.add(sub, "removed", old[k], None)
                elif k not in old:
                    self.add(sub, "added", None, new[k])
                else:
                    self.walk(sub, old[k], new[k], depth + 1)
            return
        if depth < self.max_depth and isinstance(old, list) and isinstance(new, list):
            for i in range(max(len(old), len(new))):
                sub = f"{path}[{i}]"
                if i >= len(new):
                    self.add(sub, "removed", old[i], None)
                elif i >= len(old):
                    self.add(sub, "added", None, new[i])
                else:
                    self.walk(sub, old[i], new[i], depth + 1)
            return
        if old != new or type(old) is not type(new):
            self.add(path, "changed", old, new)


def structured_diff(old: Any, new: Any, *, max_depth: int = MAX_DEPTH,
                    max_changes: int = MAX_CHANGES) -> tuple[list[dict[str, Any]], bool]:
    """The changes from ``old`` to ``new`` and whether the list was cut at ``max_changes``."""
    c = _Collector(max_depth, max_changes)
    c.walk("", old, new, 0)
    return c.changes, c.truncated


def counts(changes: list[dict[str, Any]]) -> dict[str, int]:
    """How many changes of each op."""
    out = {"added": 0, "removed": 0, "changed": 0}
    for ch in changes:
        out[ch["op"]] += 1
    return out
