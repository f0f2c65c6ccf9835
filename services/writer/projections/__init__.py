"""Projectors, one module per event family; importing this package registers them all."""

from services.writer.projections import alerts, audit, collected, config, devices, perf

REGISTERED = (alerts, audit, collected, config, devices, perf)
