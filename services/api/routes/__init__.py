"""One router per resource, in the order the OpenAPI document lists them."""

from services.api.routes import (
    audit, cache, config, containers, data, devices, drives, health, inventory, keys, metrics, network, prometheus,
    services, stream, timeline, watch, zfs,
)

ROUTERS = [
    health.router, devices.router, metrics.router, data.router, containers.router, drives.router, network.router,
    zfs.router, services.router, inventory.router, timeline.router, stream.router, config.router, watch.router, audit.router,
    cache.router, keys.router, prometheus.router,
]
