"""Builders of realistic events for tests."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

from shared import events
from shared.alert_events import AlertRule
from shared.collected import COLLECTED_TYPES
from shared.config_events import ConfigChanged, Impact
from shared.datatypes.containers.payload import Container, Containers, Port
from shared.datatypes.drive_health.payload import Attribute, Drive, DriveHealth
from shared.datatypes.inventory.payload import Inventory, Package
from shared.datatypes.network.payload import Address, Interface, Network
from shared.datatypes.system_metrics.payload import Filesystem, NetCounters, SystemMetrics
from shared.datatypes.systemd_services.payload import SystemdServices, Unit
from shared.datatypes.zfs.payload import Dataset, Pool, Vdev, Zfs
from shared.envelope import Collected
from shared.events import DeviceChanged, DeviceSpec


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
                  status: str = "success", **kw) -> Collected:
    fields = dict(
        device_id=device_id, device=device, service="collector", instance="test", trigger="poll", status=status,
        duration_ms=510.0, ssh_command_count=1, data_size_bytes=4096, occurred_at=at or events.utcnow(),
        payload=payload(cpu) if status != "error" else None, error="boom" if status == "error" else None,
        freshness_threshold_s=300,
    )
    return events.new_event(COLLECTED_TYPES["system_metrics"], **{**fields, **kw})


def metrics_series(device_id: uuid.UUID, n: int, device: str = "dev1") -> list[Collected]:
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    return [metrics_event(device_id, device, at=start + timedelta(seconds=i), cpu=float(i % 100)) for i in range(n)]


def device_event(name: str = "dev1", action: str = "registered", spec: DeviceSpec | None = None) -> DeviceChanged:
    spec = spec or DeviceSpec(id=uuid.uuid4(), name=name, address="10.0.0.5", username="ops")
    return events.new_event(DeviceChanged, action=action, spec=spec, device_id=spec.id, device=spec.name,
                            service="api", instance="test", trigger="api")



def containers_event(device_id: uuid.UUID, device: str = "dev1", *, at: datetime | None = None, count: int = 20,
                     **kw) -> Collected:
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
    return events.new_event(COLLECTED_TYPES["containers"], **{**fields, **kw})




def _collected(cls, device_id: uuid.UUID, device: str, at: datetime | None, payload, **kw):
    fields = {"device_id": device_id, "device": device, "service": "collector", "instance": "test", "trigger": "poll",
              "duration_ms": 200.0, "ssh_command_count": 1, "occurred_at": at or events.utcnow(), "payload": payload}
    return events.new_event(cls, **{**fields, **kw})


def drive_health_event(device_id: uuid.UUID, device: str = "dev1", *, at: datetime | None = None,
                       temperature: int = 35, hours: int = 1000, healthy: bool = True, **kw) -> Collected:
    """smartctl readings of an ATA /dev/sda and an NVMe /dev/nvme0n1 (2 degrees warmer)."""

    drives = [
        Drive(name="/dev/sda", protocol="ATA", model="WDC WD40EFRX", serial="WD-1", firmware="82.00A82",
              capacity_bytes=4 << 40, rotation_rpm=5400, temperature_celsius=temperature, power_on_hours=hours,
              healthy=healthy, smartctl_exit_status=0 if healthy else 8,
              attributes=[Attribute(name="Reallocated_Sector_Ct", id=5, value=200, worst=200, threshold=140,
                                    raw=0 if healthy else 12, prefailure=True)]),
        Drive(name="/dev/nvme0n1", protocol="NVMe", model="Samsung 980", serial="S1", capacity_bytes=1 << 40,
              temperature_celsius=temperature + 2, power_on_hours=hours, healthy=True, smartctl_exit_status=0,
              attributes=[Attribute(name="percentage_used", raw=3)]),
    ]
    return _collected(COLLECTED_TYPES["drive_health"], device_id, device, at, DriveHealth(drives=drives), **kw)


def network_event(device_id: uuid.UUID, device: str = "dev1", *, at: datetime | None = None, rx: int = 1000,
                  **kw) -> Collected:
    """Interfaces lo and eth0; eth0 has received ``rx`` bytes."""

    interfaces = [
        Interface(name="lo", index=1, state="UNKNOWN", mtu=65536, link_type="loopback",
                  addresses=[Address(family="inet", address="127.0.0.1", prefixlen=8, scope="host")],
                  rx_bytes=10, tx_bytes=10),
        Interface(name="eth0", index=2, state="UP", mtu=1500, mac="52:54:00:12:34:56", link_type="ether",
                  addresses=[Address(family="inet", address="10.0.0.5", prefixlen=24, scope="global")],
                  rx_bytes=rx, rx_packets=rx // 100, rx_errors=0, rx_dropped=0, tx_bytes=rx // 2,
                  tx_packets=rx // 200, tx_errors=0, tx_dropped=0),
    ]
    return _collected(COLLECTED_TYPES["network"], device_id, device, at, Network(interfaces=interfaces), **kw)


def zfs_event(device_id: uuid.UUID, device: str = "dev1", *, at: datetime | None = None, health: str = "ONLINE",
              checksum_errors: int = 0, **kw) -> Collected:
    """Pools tank (mirror of two disks) and backup, with datasets."""

    pools = [
        Pool(name="tank", health=health, size_bytes=4 << 40, allocated_bytes=1 << 40, free_bytes=3 << 40,
             fragmentation_percent=3, capacity_percent=25, checksum_errors=checksum_errors, scrub_state="finished",
             last_scrub_end="2026-01-04T03:00:00", scrub_errors=0, errors="No known data errors",
             vdevs=[Vdev(name="mirror-0", state=health), Vdev(name="sda", state="ONLINE", depth=1),
                    Vdev(name="sdb", state=health, depth=1, checksum_errors=checksum_errors)]),
        Pool(name="backup", health="ONLINE", size_bytes=8 << 40, allocated_bytes=2 << 40, free_bytes=6 << 40),
    ]
    datasets = [Dataset(name="tank", used_bytes=1 << 40, available_bytes=3 << 40, referenced_bytes=1 << 20,
                        mountpoint="/tank"),
                Dataset(name="backup", used_bytes=2 << 40, available_bytes=6 << 40, referenced_bytes=1 << 20)]
    return _collected(COLLECTED_TYPES["zfs"], device_id, device, at, Zfs(pools=pools, datasets=datasets), **kw)


def systemd_event(device_id: uuid.UUID, device: str = "dev1", *, at: datetime | None = None,
                  **kw) -> Collected:
    """nginx running, backup failed."""

    units = [Unit(name="nginx.service", load="loaded", active="active", sub="running", restarts=1, result="success"),
             Unit(name="backup.service", load="loaded", active="failed", sub="failed", result="exit-code")]
    return _collected(COLLECTED_TYPES["systemd_services"], device_id, device, at,
                      SystemdServices(units=units, failed=["backup.service"], restarted=["nginx.service"], total=2,
                                      active=1), **kw)


def inventory_event(device_id: uuid.UUID, device: str = "dev1", *, at: datetime | None = None,
                    kernel: str = "6.1.0-18-amd64", drift=None, **kw) -> Collected:
    """A Debian host; ``drift`` as the collector computed it (None for a first snapshot)."""

    inv = Inventory(hostname=device, kernel=kernel, architecture="x86_64", os_id="debian", os_name="Debian GNU/Linux",
                    os_version="12", cpu_model="Xeon", cpu_count=4, memory_total_bytes=8 << 30,
                    package_manager="dpkg", packages=[Package(name="nginx", version="1.22.1", manager="dpkg")],
                    env={"LANG": "C.UTF-8"}, drift=drift)
    return _collected(COLLECTED_TYPES["inventory"], device_id, device, at, inv, **kw)


# --- alert rules, and events at a time the test controls (T0 + seconds) ---------------------------

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def rule(metric: str = "cpu", **kw) -> AlertRule:
    fields = dict(id=uuid.uuid4(), name=f"{metric.replace('_', '-')}-rule", metric=metric, operator=">",
                  threshold=90.0, duration_s=30, refire_interval_s=3600)
    return AlertRule(**{**fields, **kw})


def cpu(device_id: uuid.UUID, seconds: float, value: float, device: str = "dev1") -> Collected:
    return metrics_event(device_id, device, at=at(seconds), cpu=value)


def containers(device_id: uuid.UUID, seconds: float, *items: tuple[str, str, str | None, int]) -> Collected:
    """items: (name, state, health, restart_count)."""
    cs = [Container(id=f"id-{n}", name=n, image="img", status=s, state=s, health=h, restart_count=r)
          for n, s, h, r in items]
    return _collected(COLLECTED_TYPES["containers"], device_id, "dev1", at(seconds),
                      Containers(runtime="docker", containers=cs))


def drives(device_id: uuid.UUID, seconds: float, *items: tuple[str, int | None, bool]) -> Collected:
    """items: (name, temperature, failing)."""
    ds = [Drive(name=n, temperature_celsius=t, failing=f, healthy=not f) for n, t, f in items]
    return _collected(COLLECTED_TYPES["drive_health"], device_id, "dev1", at(seconds), DriveHealth(drives=ds))


def units(device_id: uuid.UUID, seconds: float, *failed: str) -> Collected:
    us = [Unit(name=n, load="loaded", active="failed", sub="failed") for n in failed]
    us.append(Unit(name="ok.service", load="loaded", active="active", sub="running"))
    return _collected(COLLECTED_TYPES["systemd_services"], device_id, "dev1", at(seconds),
                      SystemdServices(units=us, failed=list(failed), total=len(us), active=1))


def pools(device_id: uuid.UUID, seconds: float, *items: tuple[str, str]) -> Collected:
    return _collected(COLLECTED_TYPES["zfs"], device_id, "dev1", at(seconds),
                      Zfs(pools=[Pool(name=n, health=h) for n, h in items]))


def config_change(device_id: uuid.UUID, seconds: float, risk: str, config_type: str = "proxy_configs") -> ConfigChanged:
    return events.new_event(
        ConfigChanged, device_id=device_id, device="dev1", service="watcher", instance="test", trigger="watch",
        occurred_at=at(seconds), config_type=config_type, path="/etc/nginx/site.conf", change_type="MODIFY",
        impact=Impact(risk_level=risk))
