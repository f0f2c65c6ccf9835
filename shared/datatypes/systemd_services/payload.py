"""Payload of a systemd_services collection: service units and their states."""

from __future__ import annotations

import msgspec


class Unit(msgspec.Struct, kw_only=True):
    name: str
    load: str  # loaded, not-found, masked, error
    active: str  # active, inactive, failed, activating, deactivating, reloading
    sub: str  # running, exited, dead, failed, auto-restart...
    description: str = ""
    restarts: int | None = None  # NRestarts (systemd 235+); None when unknown
    result: str | None = None  # success, exit-code, signal, timeout, core-dump...


class SystemdServices(msgspec.Struct, kw_only=True):
    units: list[Unit] = []
    failed: list[str] = []  # names of the units whose active state is "failed"
    restarted: list[str] = []  # names of the units restarted at least once since they were loaded
    total: int = 0
    active: int = 0
