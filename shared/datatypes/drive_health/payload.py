"""Payload of a drive_health collection: one entry per drive smartctl was run on."""

from __future__ import annotations

import msgspec

from shared.envelope import KeyName


class Attribute(msgspec.Struct, kw_only=True):
    """One SMART attribute (ATA table), health-log item (NVMe) or counter (SCSI)."""

    name: str
    id: int | None = None
    value: int | None = None  # normalized (ATA)
    worst: int | None = None
    threshold: int | None = None
    raw: int | float | str | None = None
    prefailure: bool | None = None
    when_failed: str | None = None  # ATA: "FAILING_NOW", "In_the_past" or None


class Drive(msgspec.Struct, kw_only=True):
    name: KeyName  # /dev/sda
    protocol: str | None = None  # ATA, NVMe, SCSI
    model: str | None = None
    serial: str | None = None
    firmware: str | None = None
    capacity_bytes: int | None = None
    rotation_rpm: int | None = None  # 0: solid state
    temperature_celsius: int | None = None
    power_on_hours: int | None = None
    healthy: bool | None = None  # SMART overall assessment; None when unknown
    failing: bool = False  # exit status bit 3 or 4: the drive says it is failing
    could_not_open: bool = False  # exit status bit 0 or 1: no SMART data was read
    smartctl_exit_status: int | None = None
    exit_flags: list[str] = []  # the exit status bits, decoded
    messages: list[str] = []  # smartctl's own messages
    attributes: list[Attribute] = []
    error: str | None = None  # why this drive has no data, when it has none


class DriveHealth(msgspec.Struct, kw_only=True):
    drives: list[Drive] = []
