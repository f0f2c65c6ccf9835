"""Projectors, one module per event family; importing this package registers them all."""

from services.writer.projections import audit, config, devices, perf, system_metrics  # noqa: F401
