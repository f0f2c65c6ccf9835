"""service_performance_metrics: one row per service instance and window."""

from __future__ import annotations

from decimal import Decimal

from schema.models import ServicePerformanceMetric
from services.writer.registry import TableRows, projector, table
from shared.events import PerfReported

table(ServicePerformanceMetric)


def _int(v: float | None) -> int | None:
    return None if v is None else round(v)


def _dec(v: float | None) -> Decimal | None:
    return None if v is None else Decimal(str(round(v, 2)))


@projector(PerfReported)
def perf(ev: PerfReported, seq: int) -> TableRows:
    top = sorted(ev.error_types.items(), key=lambda kv: -kv[1])[:5]
    return {"service_performance_metrics": [{
        "time": ev.occurred_at, "service_name": ev.service, "instance": ev.instance,
        "operations_total": ev.operations_total, "operations_successful": ev.operations_successful,
        "operations_failed": ev.operations_failed, "operations_cached": ev.operations_cached,
        "avg_duration_ms": _dec(ev.avg_duration_ms), "max_duration_ms": _int(ev.max_duration_ms),
        "min_duration_ms": _int(ev.min_duration_ms), "ssh_connections_created": ev.ssh_connections_created,
        "ssh_connections_reused": ev.ssh_connections_reused, "ssh_commands_executed": ev.ssh_commands_executed,
        "cache_hit_ratio": _dec(ev.cache_hit_ratio), "cache_size_entries": ev.cache_size_entries,
        "cache_evictions": ev.cache_evictions, "data_collected_bytes": ev.data_collected_bytes,
        "database_writes": ev.database_writes, "error_types": ev.error_types,
        "top_errors": [{"type": k, "count": v} for k, v in top],
    }]}
