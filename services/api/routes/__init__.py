"""One router per resource, in the order the OpenAPI document lists them."""

from services.api.routes import audit, cache, config, data, devices, health, keys, metrics, prometheus, stream, timeline

ROUTERS = [
    health.router, devices.router, metrics.router, data.router, timeline.router, stream.router, config.router,
    audit.router, cache.router, keys.router, prometheus.router,
]
