"""service_performance_metrics: one row per service instance and window."""

from __future__ import annotations

from decimal import Decimal

from services.writer.projection import Rows, j, projector, table
from shared.events import PerfReported

table("service_performance_metrics", (
    "time", "service_name", "instance", "operations_total", "operations_successful", "operations_failed",
    "operations_cached", "avg_duration_ms", "max_duration_ms", "min_duration_ms", "ssh_connections_created",
    "ssh_connections_reused", "ssh_commands_executed", "cache_hit_ratio", "cache_size_entries", "cache_evictions",
    "data_collected_bytes", "database_writes", "error_types", "top_errors",
))


def _int(v: float | None) -> int | None:
    return None if v is None else round(v)


def _dec(v: float | None) -> Decimal | None:
    return None if v is None else Decimal(str(round(v, 2)))


@projector(PerfReported)
def perf(ev: PerfReported, seq: int) -> Rows:
    top = sorted(ev.error_types.items(), key=lambda kv: -kv[1])[:5]
    return {"service_performance_metrics": [(
        ev.occurred_at, ev.service, ev.instance, ev.operations_total, ev.operations_successful,
        ev.operations_failed, ev.operations_cached,
        _dec(ev.avg_duration_ms), _int(ev.max_duration_ms),
        _int(ev.min_duration_ms), ev.ssh_connections_created, ev.ssh_connections_reused, ev.ssh_commands_executed,
        _dec(ev.cache_hit_ratio), ev.cache_size_entries, ev.cache_evictions, ev.data_collected_bytes,
        ev.database_writes, j(ev.error_types),
        j([{"type": k, "count": v} for k, v in top]),
    )]}
