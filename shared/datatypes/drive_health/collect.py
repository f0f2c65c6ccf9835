"""drive_health: SMART data of every physical drive (ATA, NVMe, SCSI) from smartctl's JSON.

``lsblk --json`` lists the drives; then ``smartctl --json -a <drive>`` runs for each one (at
most the connection's channel limit at a time), each drive path its own argument, with the
device's sudo prefix when one is configured. smartctl's exit status is a bit mask
(:data:`EXIT_BITS`): bit 3 or 4 means the drive itself reports failing, bits 0-1 mean no data
could be read from it. Without smartctl, or when no drive answers SMART (virtual disks), the
type is unsupported on the host.
"""

from __future__ import annotations

import json
import re
from typing import Any

from shared.datatypes.capture import Output, Session, read_nonempty, require, sbin
from shared.datatypes.drive_health.payload import Attribute, Drive, DriveHealth
from shared.datatypes.parsing import CommandFailed, ParseError, ParseResult, Unsupported

NAME = "drive_health"
LSBLK = ["lsblk", "--json", "--nodeps", "--paths", "--bytes", "--output", "NAME,TYPE,SIZE,MODEL,SERIAL,TRAN"]
TIMEOUT_S = 60.0
RETRIES = 0  # smartctl wakes sleeping disks; a hung one is not asked twice
INTERVAL_S = 3600
FRESHNESS_S = 3600

EXIT_BITS = (
    "command_line_error",  # 0: the command line did not parse (also: device type unknown)
    "open_failed",  # 1: the device could not be opened, or did not identify, or sleeps
    "smart_command_failed",  # 2: a SMART or other command failed, or a checksum error
    "disk_failing",  # 3: SMART status "DISK FAILING"
    "prefail_below_threshold",  # 4: prefail attributes at or below threshold now
    "past_below_threshold",  # 5: attributes at or below threshold in the past
    "error_log",  # 6: the device error log has entries
    "self_test_errors",  # 7: the self-test log has errors
)

# Kernel devices that are not drives: compressed RAM, loop, RAM disks, network block devices.
# /dev/zram0   /dev/loop3   /dev/nbd0   /dev/md127
NOT_A_DRIVE_RE = re.compile(r"^/dev/(?:zram|loop|ram|nbd|sr|fd|md|dm-)\d*")
# /dev/sda   /dev/nvme0n1   /dev/mmcblk0   /dev/disk/by-id/ata-WDC_WD40EFRX-68N32N0_WD-WCC7K1234567
DRIVE_PATH_RE = re.compile(r"^/dev/[A-Za-z0-9][A-Za-z0-9._/-]*$")


def decode_exit(status: int | None) -> list[str]:
    """smartctl's exit status as the names of its set bits."""
    if status is None:
        return []
    return [name for bit, name in enumerate(EXIT_BITS) if status & (1 << bit)]


def smartctl_argv(path: str, sudo: list[str]) -> list[str]:
    """The command for one drive; ``path`` stays one argument whatever it holds."""
    if not DRIVE_PATH_RE.match(path) or ".." in path:
        raise ValueError(f"not a drive path: {path!r}")
    argv = ["smartctl", "--json", "-a", path]
    return [*sudo, *argv] if sudo else sbin(argv)


def drives(out: Output) -> list[str]:
    """Paths of the physical drives in ``lsblk --json`` output (pure)."""
    try:
        data = json.loads(out.stdout)
    except json.JSONDecodeError as exc:
        raise ParseError(f"lsblk: not JSON ({exc.msg})", out.stdout.strip().splitlines()[0][:200] if out.stdout.strip() else "", 1) from None
    devices = data.get("blockdevices") if isinstance(data, dict) else None
    if not isinstance(devices, list):
        raise ParseError("lsblk: no 'blockdevices' list")
    paths = []
    for d in devices:
        name = str(d.get("name", ""))
        if not name.startswith("/"):
            name = "/dev/" + name  # lsblk without --paths
        if d.get("type") == "disk" and not NOT_A_DRIVE_RE.match(name) and DRIVE_PATH_RE.match(name):
            paths.append(name)
    return paths


async def gather(session: Session) -> None:
    """lsblk, then smartctl on each drive at once (the transport bounds the channels)."""
    import asyncio

    out = await session.run("lsblk", LSBLK)
    if not out.ok:
        return
    paths = drives(out)
    await asyncio.gather(*(session.run(f"smartctl {p}", smartctl_argv(p, session.sudo)) for p in paths))


# ---------------------------------------------------------------- one drive


def _attributes(data: dict[str, Any]) -> list[Attribute]:
    attrs: list[Attribute] = []
    for a in (data.get("ata_smart_attributes") or {}).get("table", []):
        raw = a.get("raw", {})
        attrs.append(Attribute(
            id=a.get("id"), name=a.get("name", f"attribute_{a.get('id')}"), value=a.get("value"), worst=a.get("worst"),
            threshold=a.get("thresh"), raw=raw.get("value") if isinstance(raw, dict) else raw,
            prefailure=(a.get("flags") or {}).get("prefailure"), when_failed=a.get("when_failed") or None,
        ))
    nvme = data.get("nvme_smart_health_information_log")
    if isinstance(nvme, dict):
        for key, value in nvme.items():
            if isinstance(value, (int, float)):
                attrs.append(Attribute(name=key, raw=value))
    if "scsi_grown_defect_list" in data:
        attrs.append(Attribute(name="scsi_grown_defect_list", raw=data["scsi_grown_defect_list"]))
    for direction, counters in (data.get("scsi_error_counter_log") or {}).items():
        for key in ("total_errors_corrected", "total_uncorrected_errors"):
            if key in counters:
                attrs.append(Attribute(name=f"{direction}_{key}", raw=counters[key]))
    return attrs


def _capacity(data: dict[str, Any]) -> int | None:
    cap = data.get("user_capacity")
    if isinstance(cap, dict):
        return cap.get("bytes")
    return data.get("nvme_total_capacity")


def _temperature(data: dict[str, Any]) -> int | None:
    """The current temperature. A SCSI/SAS drive without a temperature log page reports 0 there
    (smartctl 7.4 then gives the reading in its environmental reports): 0 is no reading."""
    current = (data.get("temperature") or {}).get("current")
    if _protocol(data) == "SCSI" and not current:
        reports = data.get("scsi_environmental_reports") or {}
        readings = [r.get("current") for k, r in sorted(reports.items()) if k.startswith("temperature") and isinstance(r, dict)]
        current = next((r for r in readings if isinstance(r, int) and r > 0), None)
    return current if isinstance(current, int) and not isinstance(current, bool) else None


def _protocol(data: dict[str, Any]) -> str | None:
    proto: str | None = (data.get("device") or {}).get("protocol")
    return proto


def parse_drive(path: str, out: Output) -> Drive:
    """One drive from its smartctl output; a drive that gave no data carries ``error``."""
    if out.killed:
        return Drive(name=path, could_not_open=True, error="smartctl was killed after its timeout")
    text = out.stdout.strip()
    try:
        data = json.loads(text) if text.startswith("{") else None
    except json.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        reason = out.stderr_tail(200) or (text.splitlines()[-1][:200] if text else "no output")
        return Drive(name=path, smartctl_exit_status=out.exit_status, exit_flags=decode_exit(out.exit_status),
                     could_not_open=True, error=f"smartctl printed no JSON (exit status {out.exit_status}): {reason}")
    smartctl = data.get("smartctl") or {}
    status = smartctl.get("exit_status", out.exit_status)
    if out.exit_status is not None:
        status = out.exit_status
    flags = decode_exit(status)
    messages = [m.get("string", "") for m in smartctl.get("messages", []) if isinstance(m, dict)]
    could_not_open = bool(status is not None and status & 0b11)
    failing = bool(status is not None and status & 0b11000)
    passed = (data.get("smart_status") or {}).get("passed")
    healthy = None if passed is None else bool(passed)
    if failing:
        healthy = False
    temperature = _temperature(data)
    hours = (data.get("power_on_time") or {}).get("hours")
    model = data.get("model_name") or " ".join(x for x in (data.get("scsi_vendor") or data.get("vendor"),
                                                           data.get("scsi_product") or data.get("product")) if x) or None
    return Drive(
        name=path, protocol=_protocol(data), model=model, serial=data.get("serial_number"),
        firmware=data.get("firmware_version") or data.get("scsi_revision") or data.get("revision"),
        capacity_bytes=_capacity(data), rotation_rpm=data.get("rotation_rate"),
        temperature_celsius=temperature,
        power_on_hours=hours if isinstance(hours, int) else None, healthy=healthy, failing=failing,
        could_not_open=could_not_open, smartctl_exit_status=status, exit_flags=flags, messages=messages,
        attributes=_attributes(data), error="; ".join(messages) or "no SMART data" if could_not_open else None,
    )


# =======> UNRECOGNIZED OPTION: json           (smartctl 6.x: no JSON output)
OLD_SMARTCTL_RE = re.compile(r"UNRECOGNIZED OPTION: json")
# sudo: smartctl: command not found
SUDO_NOT_FOUND_RE = re.compile(r"^sudo: \S+: command not found", re.M)


def parse_outputs(outputs: dict[str, Output]) -> ParseResult[DriveHealth]:
    lsblk = require(outputs.get("lsblk"), "lsblk")
    paths = drives(lsblk)
    result: list[Drive] = []
    warnings: list[str] = []
    for path in paths:
        out = outputs.get(f"smartctl {path}")
        if out is None:
            raise ParseError(f"section 'smartctl {path}' missing: lsblk lists the drive but smartctl did not run on it")
        if out.not_found or SUDO_NOT_FOUND_RE.search(out.stderr):
            raise Unsupported(f"smartctl is not installed (smartmontools): {out.stderr_tail(120)}")
        if OLD_SMARTCTL_RE.search(out.stdout + out.stderr):
            raise Unsupported("smartctl has no JSON output: smartmontools 7.0 or newer needed")
        result.append(parse_drive(path, out))
    unreadable = [d for d in result if d.could_not_open]
    if result and len(unreadable) == len(result):
        reasons = "; ".join(f"{d.name}: {d.error}" for d in unreadable)
        if re.search(r"permission denied|a password is required|not in the sudoers", reasons, re.I):
            raise CommandFailed(f"smartctl could not read any drive (set a sudo prefix?): {reasons}")
        raise Unsupported(f"no drive answers SMART: {reasons}")
    for d in unreadable:
        warnings.append(f"{d.name}: no SMART data: {d.error}")
    return ParseResult(DriveHealth(drives=result), warnings)


def parse(text: str) -> ParseResult[DriveHealth]:
    """Parse a capture file: section ``lsblk``, then ``smartctl <path>`` for each drive lsblk lists."""
    return parse_outputs(read_nonempty(text))
