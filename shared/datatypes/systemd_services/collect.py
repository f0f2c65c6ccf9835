"""systemd_services: service units with their load, active and sub state; failed units; restarts.

Two commands: ``systemctl list-units`` (every loaded service, plain columns) and
``systemctl show`` on the same units for NRestarts and Result (systemd 235+; older systemd
prints no NRestarts and restarts stay unknown). A host where systemd is not the init system,
or without systemctl, is unsupported.
"""

from __future__ import annotations

import re

from shared.datatypes.capture import Output, read_nonempty, require
from shared.datatypes.parsing import ParseError, ParseResult, Unsupported
from shared.datatypes.systemd_services.payload import SystemdServices, Unit

NAME = "systemd_services"
COMMANDS = {
    "units": ["systemctl", "list-units", "--type=service", "--all", "--no-pager", "--plain", "--no-legend"],
    "show": ["systemctl", "show", "--no-pager", "--property=Id,NRestarts,Result", "*.service"],
}
TIMEOUT_S = 30.0
RETRIES = 1
INTERVAL_S = 600
FRESHNESS_S = 600

# System has not been booted with systemd as init system (PID 1). Can't operate.
# Failed to connect to bus: Host is down
NOT_RUNNING_RE = re.compile(r"not been booted with systemd|Failed to connect to bus|systemd is not running", re.I)

# ssh.service                 loaded    active   running OpenBSD Secure Shell server
# nginx.service               loaded    failed   failed  A high performance web server
# ● foo.service               not-found inactive dead    foo.service      (older systemd, --plain ignored)
UNIT_RE = re.compile(r"^(?:[●*x]\s+)?(\S+\.service)\s+(\S+)\s+(\S+)\s+(\S+)(?:\s+(.*))?$")


def parse_units(out: Output) -> list[Unit]:
    units: list[Unit] = []
    lines = out.stdout.splitlines()
    for no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        m = UNIT_RE.match(line.strip())
        if not m:
            # "0 loaded units listed." closes the list on systemd versions that ignore --no-legend for it
            if re.match(r"^\d+ loaded units listed", line.strip()):
                continue
            raise ParseError("unexpected line in systemctl list-units", line, no)
        name, load, active, sub, description = m.groups()
        units.append(Unit(name=name, load=load, active=active, sub=sub, description=(description or "").strip()))
    return units


def parse_show(out: Output) -> dict[str, dict[str, str]]:
    """``systemctl show`` blocks (``Key=value`` lines, a blank line between units) by Id."""
    blocks: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for line in [*out.stdout.splitlines(), ""]:
        if not line.strip():
            if "Id" in current:
                blocks[current["Id"]] = current
            current = {}
            continue
        key, sep, value = line.partition("=")
        if sep:
            current[key] = value
    return blocks


def parse_outputs(outputs: dict[str, Output]) -> ParseResult[SystemdServices]:
    units_out = outputs.get("units")
    for out in (units_out, outputs.get("show")):
        if out is not None and not out.ok and NOT_RUNNING_RE.search(out.stderr):
            raise Unsupported(f"systemd is not the init system here: {out.stderr.strip().splitlines()[0]}")
    units = parse_units(require(units_out, "units", "systemctl"))
    warnings: list[str] = []
    show = outputs.get("show")
    details: dict[str, dict[str, str]] = {}
    if show is None or not show.ok:
        warnings.append(f"restart counts unknown: {show.failure() if show else 'systemctl show missing'}")
    else:
        details = parse_show(show)
    for unit in units:
        d = details.get(unit.name, {})
        restarts = d.get("NRestarts", "")
        unit.restarts = int(restarts) if restarts.isdigit() else None
        unit.result = d.get("Result") or None
    units.sort(key=lambda u: u.name)
    return ParseResult(SystemdServices(
        units=units,
        failed=[u.name for u in units if u.active == "failed"],
        restarted=[u.name for u in units if u.restarts],
        total=len(units),
        active=sum(1 for u in units if u.active == "active"),
    ), warnings)


def parse(text: str) -> ParseResult[SystemdServices]:
    """Parse a capture file with sections ``units`` and ``show``."""
    return parse_outputs(read_nonempty(text))
