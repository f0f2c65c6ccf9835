"""Payload of a containers collection (docker or podman)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

from shared.envelope import KeyName


class Port(msgspec.Struct, kw_only=True):
    container_port: str  # "80" or a range "8000-8002"
    protocol: str = "tcp"
    host_ip: str | None = None
    host_port: str | None = None  # None: exposed, not published


class Container(msgspec.Struct, kw_only=True):
    id: KeyName
    name: str
    image: str
    status: str  # as the runtime prints it: "Up 3 weeks (healthy)"
    state: str  # created, running, paused, restarting, removing, exited, dead
    health: str | None = None  # healthy, unhealthy, starting; None without a healthcheck
    restart_count: int | None = None
    ports: list[Port] = []
    created: datetime | None = None
    cpu_percent: float | None = None  # stats: running containers only
    memory_bytes: int | None = None
    memory_limit_bytes: int | None = None
    net_rx_bytes: int | None = None
    net_tx_bytes: int | None = None
    block_read_bytes: int | None = None
    block_write_bytes: int | None = None
    pids: int | None = None


class RemovedContainer(msgspec.Struct, kw_only=True):
    """A container of the previous snapshot that is gone from this one."""

    id: str
    name: str
    image: str


class Containers(msgspec.Struct, kw_only=True):
    runtime: Literal["docker", "podman"]
    containers: list[Container] = []
    removed: list[RemovedContainer] = []
