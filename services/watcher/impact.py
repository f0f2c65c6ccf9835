"""What a configuration change affects: services, restart or reload, risk (with the rule that
set it), a structured diff of the parsed data and a unified diff of the (redacted) text. Pure.

The rules every file gets are here (no parser, parse error, formatting only, mode and owner,
world-writable); each config type adds its own (``ConfigType.rules`` in
``services/watcher/configtypes/``)."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from services.watcher.configtypes import config_type as declared
from services.watcher.configtypes.base import Effects, Risk
from shared.config_events import ChangeType, DiffSummary, Impact

MAX_DIFF_CHARS = 64 * 1024
MAX_KEYS = 200


@dataclass(frozen=True)
class Side:
    """One version of a file, as far as the impact analysis needs it."""

    parsed: dict[str, Any] | None = None
    text: str | None = None  # redacted
    mode: str | None = None
    owner: str | None = None
    parse_error: str | None = None


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Leaves of nested mappings by dotted path; a key holding a dot is written as ``[key]``."""
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for k, v in value.items():
            k = str(k)
            part = f"[{k}]" if "." in k else k
            out.update(flatten(v, f"{prefix}.{part}" if prefix else part))
        return out
    return {prefix: value} if prefix else {}


def summarize(old: dict[str, Any] | None, new: dict[str, Any] | None, old_side: Side, new_side: Side) -> DiffSummary:
    a, b = flatten(old or {}), flatten(new or {})
    return DiffSummary(
        added=sorted(k for k in b if k not in a)[:MAX_KEYS],
        removed=sorted(k for k in a if k not in b)[:MAX_KEYS],
        changed=sorted(k for k in a if k in b and a[k] != b[k])[:MAX_KEYS],
        metadata=[m for m in ("mode", "owner") if getattr(old_side, m) and getattr(new_side, m)
                  and getattr(old_side, m) != getattr(new_side, m)],
    )


def unified_diff(path: str, old_path: str | None, old: str | None, new: str | None) -> tuple[str | None, bool]:
    if old is None or new is None:
        return None, False
    text = "".join(difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                        fromfile=f"a{old_path or path}", tofile=f"b{path}"))
    if len(text) > MAX_DIFF_CHARS:
        return text[:MAX_DIFF_CHARS], True
    return text, False


def assess(config_type: str, path: str, change: ChangeType, old: Side, new: Side,
           old_path: str | None = None) -> Impact:
    """The impact of one change; ``old``/``new`` are empty Sides for a CREATE/DELETE."""
    ct = declared(config_type)
    risk, fx = Risk(), Effects()
    s = summarize(old.parsed, new.parsed, old, new)
    has_parser = ct.parse is not None
    if ct.rules is not None:
        ct.rules(change, old.parsed or {}, new.parsed or {}, s, risk, fx, path)
    text_changed = old.text != new.text
    if change == "MOVE":
        risk.at_least("LOW", "moved, content unchanged")
    elif not has_parser:
        if change != "MODIFY" or text_changed or old.text is None or new.text is None:
            risk.at_least("MEDIUM", f"{config_type}: no parser, content changed")
    elif new.parse_error and change != "DELETE":
        risk.at_least(ct.parse_error_risk, f"{config_type}: the new version does not parse ({new.parse_error})")
    elif change == "MODIFY" and not (s.added or s.removed or s.changed) and text_changed:
        risk.at_least("LOW", "only comments or formatting changed")
    if s.metadata:
        risk.at_least("LOW", "mode or owner changed")
    if new.mode and int(new.mode, 8) & 0o002 and (change != "MODIFY" or "mode" in s.metadata or old.mode is None):
        risk.at_least("HIGH", "the file is world-writable")
    diff, cut = unified_diff(path, old_path, old.text if change != "CREATE" else "",
                             new.text if change != "DELETE" else "")
    parsed_both = (old.parsed is not None or change == "CREATE") and (new.parsed is not None or change == "DELETE")
    return Impact(
        affected_services=fx.affected,
        dependencies=fx.dependencies,
        requires_restart=bool(fx.restart) and change != "MOVE",
        restart_services=fx.restart if change != "MOVE" else [],
        requires_reload=bool(fx.reload),
        reload_services=fx.reload,
        actions=fx.actions,
        risk_level=risk.level,
        risk_rule=risk.rule,
        confidence=0.9 if has_parser and parsed_both else 0.5,
        summary=s,
        unified_diff=diff,
        unified_diff_truncated=cut,
    )
