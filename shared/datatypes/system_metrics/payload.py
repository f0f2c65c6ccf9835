"""Payload of a system_metrics collection."""

from __future__ import annotations

import msgspec


class Filesystem(msgspec.Struct, kw_only=True):
    device: str
    mount: str
    fstype: str
    total_bytes: int
    used_bytes: int
    available_bytes: int
    used_percent: float


class NetCounters(msgspec.Struct, kw_only=True):
    interface: str
    rx_bytes: int
    rx_packets: int
    rx_errors: int
    rx_dropped: int
    tx_bytes: int
    tx_packets: int
    tx_errors: int
    tx_dropped: int


class DiskIO(msgspec.Struct, kw_only=True):
    device: str
    reads_completed: int
    read_bytes: int
    read_time_ms: int
    writes_completed: int
    write_bytes: int
    write_time_ms: int
    io_in_progress: int
    io_time_ms: int


class SystemMetrics(msgspec.Struct, kw_only=True):
    cpu_percent: float
    cpu_count: int
    per_cpu_percent: list[float] = []
    cpu_iowait_percent: float = 0.0
    cpu_steal_percent: float = 0.0
    memory_total_bytes: int
    memory_available_bytes: int
    memory_used_bytes: int
    memory_percent: float
    swap_total_bytes: int = 0
    swap_used_bytes: int = 0
    swap_percent: float = 0.0
    load_1: float
    load_5: float
    load_15: float
    uptime_seconds: float
    filesystems: list[Filesystem] = []
    network: list[NetCounters] = []
    disks: list[DiskIO] = []
