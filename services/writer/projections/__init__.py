"""Projectors, one module per event family; importing this package registers them all."""

from services.writer.projections import audit, config, devices, perf, system_metrics  # noqa: F401
from services.writer.projections import alerts  # noqa: F401,E402
from services.writer.projections import (  # noqa: F401,E402
    containers, drive_health, inventory, network, systemd_services, zfs,
)
