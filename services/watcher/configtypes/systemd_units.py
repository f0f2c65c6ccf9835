"""``systemd_units``: systemd unit files (.service, .socket, .timer, .mount, .target, .path).

Parsed: sections, ExecStart, dependencies and [Install] targets; Environment= keeps variable
names only, never values. Redacted by key (``redaction/unit.py``). A change to a unit that keeps
the host reachable (``CRITICAL_UNITS``) is CRITICAL."""

from __future__ import annotations

import posixpath
import re
from typing import Any

from services.watcher.configtypes.base import ConfigType, Effects, Risk, touches
from services.watcher.redaction import unit as unit_redaction
from services.watcher.redaction.common import Span
from services.watcher.redaction.text import pem
from shared.config_events import ChangeType, DiffSummary
from shared.errors import ParseError

SUFFIXES = ("service", "socket", "timer", "mount", "target", "path")
# units whose failure takes the host off the network, or out of reach over SSH
CRITICAL_UNITS = ("ssh", "sshd", "networking", "systemd-networkd", "NetworkManager", "systemd-resolved",
                  "wpa_supplicant", "dbus", "systemd-logind")
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
            raise ParseError(f"not a 'Key=value' assignment: {line[:80]!r}", line_no=first)
        if current is None:
            raise ParseError("assignment outside of a [Section]", line_no=first)
        key, value = (x.strip() for x in line.split("=", 1))
        if value == "":
            current[key] = []
        else:
            current.setdefault(key, []).append(value)
    if pending:
        raise ParseError("file ends inside a continued line", line_no=start)
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
        "description": _last(unit, "Description"),
        "sections": secs,
        "exec_start": service.get("ExecStart", []),
        "service_type": _last(service, "Type"),
        "user": _last(service, "User"),
        "dependencies": {k: v for k, v in deps.items() if v},
        "wanted_by": sorted({v for value in install.get("WantedBy", []) for v in value.split()}),
        "required_by": sorted({v for value in install.get("RequiredBy", []) for v in value.split()}),
        "environment_keys": env_keys,
    }


def _last(section: dict[str, list[str]], key: str) -> str | None:
    """The last value of ``key`` in a section (a later assignment overrides), or None."""
    values = section.get(key)
    return values[-1] if values else None


def redact(text: str, low: str, path: str) -> list[Span]:
    return unit_redaction.spans(text, low) + pem(text, 0, len(text))


def rules(change: ChangeType, old: dict[str, Any], new: dict[str, Any], s: DiffSummary, risk: Risk, fx: Effects, path: str) -> None:
    """The unit restarts (a target does not) after a daemon-reload, and is (re-)enabled when its
    [Install] targets are new or changed; ExecStart/User, dependencies and critical units raise the risk."""
    unit = posixpath.basename(path)
    base = unit.rsplit(".", 1)[0]
    keys = s.added + s.removed + s.changed
    fx.affected = [unit]
    fx.dependencies = sorted({d for p in (old, new) for v in p.get("dependencies", {}).values() for d in v})
    fx.reload = ["systemd"]
    actions = ["systemctl daemon-reload"]
    if not unit.endswith(".target") and change != "DELETE":
        fx.restart = [unit]
        actions.append(f"systemctl restart {unit}")
    if change == "CREATE" and (new.get("wanted_by") or new.get("required_by")):
        actions.append(f"systemctl enable {unit}")
    elif change == "MODIFY" and touches(keys, "wanted_by", "required_by", "sections.Install"):
        actions.append(f"systemctl reenable {unit}")
    keys = keys if change == "MODIFY" else []
    fx.actions = actions
    if base in CRITICAL_UNITS:
        risk.at_least("CRITICAL", f"systemd: {unit} keeps the host reachable")
    if change == "DELETE":
        risk.at_least("HIGH", "systemd: unit deleted")
    if touches(keys, "exec_start", "sections.Service.ExecStart", "user", "sections.Service.User"):
        risk.at_least("HIGH", "systemd: ExecStart or User changed")
    if touches(keys, "dependencies", "wanted_by", "required_by"):
        risk.at_least("MEDIUM", "systemd: dependencies or install targets changed")
    if keys:
        risk.at_least("MEDIUM", "systemd: unit settings changed")
    if change == "CREATE":
        risk.at_least("MEDIUM", "systemd: new unit")


TYPE = ConfigType(
    name="systemd_units",
    globs=tuple(f"/etc/systemd/system/*.{s}" for s in SUFFIXES),
    parse=parse,
    redact=redact,
    rules=rules,
    parse_error_risk="HIGH",
)
