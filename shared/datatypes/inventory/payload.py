"""Payload of an inventory collection: the system, its packages, and the drift since the last one."""

from __future__ import annotations

import msgspec


class Package(msgspec.Struct, kw_only=True):
    name: str
    version: str
    arch: str | None = None
    manager: str  # dpkg, rpm, apk, pip


class Change(msgspec.Struct, kw_only=True):
    """One item that differs from the previous snapshot: added (old None), removed (new None) or changed."""

    name: str
    old: str | None = None
    new: str | None = None


class Drift(msgspec.Struct, kw_only=True):
    changed: bool = False
    system: list[Change] = []  # os, kernel, hostname, cpu, memory
    packages: list[Change] = []
    python_packages: list[Change] = []
    env: list[Change] = []


class Inventory(msgspec.Struct, kw_only=True):
    hostname: str
    kernel: str
    architecture: str
    os_id: str | None = None
    os_name: str | None = None
    os_version: str | None = None
    os_pretty_name: str | None = None
    cpu_model: str | None = None
    cpu_count: int | None = None
    memory_total_bytes: int | None = None
    package_manager: str | None = None  # dpkg, rpm or apk; None when none was found
    packages: list[Package] = []
    python_packages: list[Package] | None = None  # None: no pip for python3 on the host
    env: dict[str, str] = {}  # whitelisted variables of the login environment
    drift: Drift | None = None  # None: the first snapshot known for the device
