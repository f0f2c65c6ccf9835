"""One router per resource, in the order the OpenAPI document lists them; ``collected`` serves the reads every
registered data type has, the others what is particular to one."""

from services.api.routes import (
    alerts,
    audit,
    cache,
    changes,
    collected,
    config,
    containers,
    data,
    devices,
    drives,
    fleet,
    health,
    inventory,
    keys,
    metrics,
    prometheus,
    stream,
    timeline,
    watch,
)

ROUTERS = [
    health.router, devices.router, metrics.router, data.router, collected.router, containers.router, drives.router,
    inventory.router, timeline.router, changes.router, stream.router, config.router, watch.router, audit.router,
    cache.router, keys.router, prometheus.router, alerts.router, fleet.router,
]
