"""Collected events, one class per data type; each is tagged ``collected.<data_type>``."""

from __future__ import annotations

from typing import ClassVar

from shared.envelope import Collected
from shared.payloads.containers import Containers
from shared.payloads.drive_health import DriveHealth
from shared.payloads.inventory import Inventory
from shared.payloads.network import Network
from shared.payloads.system_metrics import SystemMetrics
from shared.payloads.systemd_services import SystemdServices
from shared.payloads.zfs import Zfs


class SystemMetricsCollected(Collected, kw_only=True, tag="collected.system_metrics"):
    data_type: ClassVar[str] = "system_metrics"
    payload: SystemMetrics | None = None


class ContainersCollected(Collected, kw_only=True, tag="collected.containers"):
    data_type: ClassVar[str] = "containers"
    payload: Containers | None = None


class DriveHealthCollected(Collected, kw_only=True, tag="collected.drive_health"):
    data_type: ClassVar[str] = "drive_health"
    payload: DriveHealth | None = None


class NetworkCollected(Collected, kw_only=True, tag="collected.network"):
    data_type: ClassVar[str] = "network"
    payload: Network | None = None


class ZfsCollected(Collected, kw_only=True, tag="collected.zfs"):
    data_type: ClassVar[str] = "zfs"
    payload: Zfs | None = None


class SystemdServicesCollected(Collected, kw_only=True, tag="collected.systemd_services"):
    data_type: ClassVar[str] = "systemd_services"
    payload: SystemdServices | None = None


class InventoryCollected(Collected, kw_only=True, tag="collected.inventory"):
    data_type: ClassVar[str] = "inventory"
    payload: Inventory | None = None


COLLECTED_EVENTS: tuple[type[Collected], ...] = (
    SystemMetricsCollected, ContainersCollected, DriveHealthCollected, NetworkCollected, ZfsCollected,
    SystemdServicesCollected, InventoryCollected,
)
