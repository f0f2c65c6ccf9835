"""systemd unit files (.service, .socket, .timer, .mount, .target, .path): sections, ExecStart,
dependencies and [Install] targets. Environment= keeps variable names only, never values."""

from __future__ import annotations

import posixpath
import re
from typing import Any

from services.watcher.parsers.errors import ParseError

DEPENDENCY_KEYS = ("Requires", "Requisite", "Wants", "BindsTo", "PartOf", "Upholds", "Conflicts", "Before", "After",
                   "OnFailure")
_SECTION = re.compile(r"^\[([^\]]+)\]$")


def sections(text: str) -> dict[str, dict[str, list[str]]]:
    """Each section's keys and their values in order; an empty assignment resets a key (as systemd does)."""
    out: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    pending, start = "", 0
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not pending and (not line or line[0] in "#;"):
            continue
        # a trailing backslash continues the line; the backslash becomes a space
        if line.endswith("\\"):
            pending, start = pending + line[:-1].rstrip() + " ", start or lineno
            continue
        line, first = pending + line, start or lineno
        pending, start = "", 0
        m = _SECTION.match(line)
        if m:
            current = out.setdefault(m.group(1), {})
            continue
        if "=" not in line:
            raise ParseError(f"not a 'Key=value' assignment: {line[:80]!r}", first)
        if current is None:
            raise ParseError("assignment outside of a [Section]", first)
        key, value = (x.strip() for x in line.split("=", 1))
        if value == "":
            current[key] = []
        else:
            current.setdefault(key, []).append(value)
    if pending:
        raise ParseError("file ends inside a continued line", start)
    return out


def parse(text: str, path: str = "unit.service") -> dict[str, Any]:
    secs = sections(text)
    env_keys = sorted({tok.strip('"').split("=", 1)[0] for value in secs.get("Service", {}).get("Environment", [])
                       for tok in value.split() if "=" in tok})
    if "Environment" in secs.get("Service", {}):
        secs["Service"]["Environment"] = env_keys  # keys only: values may be secrets
    name = posixpath.basename(path)
    unit, service, install = secs.get("Unit", {}), secs.get("Service", {}), secs.get("Install", {})
    deps = {k: sorted({v for value in unit.get(k, []) for v in value.split()}) for k in DEPENDENCY_KEYS}
    return {
        "unit": name,
        "unit_type": name.rsplit(".", 1)[-1] if "." in name else None,
        "description": (unit.get("Description") or [None])[-1],
        "sections": secs,
        "exec_start": service.get("ExecStart", []),
        "service_type": (service.get("Type") or [None])[-1],
        "user": (service.get("User") or [None])[-1],
        "dependencies": {k: v for k, v in deps.items() if v},
        "wanted_by": sorted({v for value in install.get("WantedBy", []) for v in value.split()}),
        "required_by": sorted({v for value in install.get("RequiredBy", []) for v in value.split()}),
        "environment_keys": env_keys,
    }
