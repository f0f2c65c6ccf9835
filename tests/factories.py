"""Builders of realistic events for tests."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

from shared import events
from shared.events import DeviceChanged, DeviceSpec, SystemMetricsCollected
from shared.collected import ContainersCollected
from shared.payloads.containers import Container, Containers, Port
from shared.payloads.system_metrics import Filesystem, NetCounters, SystemMetrics


def payload(cpu: float = 12.5) -> SystemMetrics:
    return SystemMetrics(
        cpu_percent=cpu, cpu_count=2, per_cpu_percent=[cpu, cpu], memory_total_bytes=8 << 30,
        memory_available_bytes=6 << 30, memory_used_bytes=2 << 30, memory_percent=25.0, load_1=0.5, load_5=0.4,
        load_15=0.3, uptime_seconds=1234.5,
        filesystems=[Filesystem(device="/dev/vda1", mount="/", fstype="ext4", total_bytes=100, used_bytes=40,
                                available_bytes=60, used_percent=40.0)],
        network=[NetCounters(interface="eth0", rx_bytes=1, rx_packets=1, rx_errors=0, rx_dropped=0, tx_bytes=2,
                             tx_packets=2, tx_errors=0, tx_dropped=0)],
    )


def metrics_event(device_id: uuid.UUID, device: str = "dev1", *, at: datetime | None = None, cpu: float = 12.5,
                  status: str = "success", **kw) -> SystemMetricsCollected:
    fields = dict(
        device_id=device_id, device=device, service="collector", instance="test", trigger="poll", status=status,
        duration_ms=510.0, ssh_command_count=1, data_size_bytes=4096, occurred_at=at or events.utcnow(),
        payload=payload(cpu) if status != "error" else None, error="boom" if status == "error" else None,
        freshness_threshold_s=300,
    )
    return events.new_event(SystemMetricsCollected, **{**fields, **kw})


def metrics_series(device_id: uuid.UUID, n: int, device: str = "dev1") -> list[SystemMetricsCollected]:
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    return [metrics_event(device_id, device, at=start + timedelta(seconds=i), cpu=float(i % 100)) for i in range(n)]


def device_event(name: str = "dev1", action: str = "registered", spec: DeviceSpec | None = None) -> DeviceChanged:
    spec = spec or DeviceSpec(id=uuid.uuid4(), name=name, address="10.0.0.5", username="ops")
    return events.new_event(DeviceChanged, action=action, spec=spec, device_id=spec.id, device=spec.name,
                            service="api", instance="test", trigger="api")



def containers_event(device_id: uuid.UUID, device: str = "dev1", *, at: datetime | None = None, count: int = 20,
                     **kw) -> ContainersCollected:
    """A docker snapshot of ``count`` running containers."""
    containers = [
        Container(id=f"{i:064x}", name=f"app-{i}", image=f"registry.local/app:{i % 3}", status="Up 2 hours",
                  state="running", health="healthy", restart_count=0,
                  ports=[Port(container_port="80", host_ip="0.0.0.0", host_port=str(8000 + i))],
                  cpu_percent=float(i % 50), memory_bytes=(64 + i) << 20, memory_limit_bytes=1 << 30,
                  net_rx_bytes=1000 * i, net_tx_bytes=500 * i, block_read_bytes=4096, block_write_bytes=8192)
        for i in range(count)
    ]
    fields = dict(device_id=device_id, device=device, service="collector", instance="test", trigger="poll",
                  duration_ms=120.0, ssh_command_count=2, occurred_at=at or events.utcnow(),
                  payload=Containers(runtime="docker", containers=containers), freshness_threshold_s=30)
    return events.new_event(ContainersCollected, **{**fields, **kw})
