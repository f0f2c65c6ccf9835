"""Performance counters every service keeps: published as ``PerfReported`` events every
``perf_interval_s`` and served as Prometheus text on /metrics, from the same numbers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from nats.js import JetStreamContext
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics import MetricWrapperBase

from shared import events
from shared.events import PerfReported
from shared.names import Names
from shared.runtime.publish import publish_event
from shared.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_METRICS_PORTS = {"collector": 9101, "watcher": 9102, "writer": 9103, "alerts": 9104, "policy": 9105}
COUNTERS = ("ssh_connections_created", "ssh_connections_reused", "ssh_commands_executed", "cache_evictions",
            "data_collected_bytes", "database_writes")


class Perf:
    """Window counters for the perf event, cumulative ones for Prometheus."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.registry = CollectorRegistry()
        self._ops = Counter("infrawatch_operations", "operations by status", ["service", "status"],
                            registry=self.registry)
        self._cached = Counter("infrawatch_operations_cached", "operations answered from the cache", ["service"],
                               registry=self.registry)
        self._duration = Histogram("infrawatch_operation_duration_seconds", "operation duration", ["service"],
                                   registry=self.registry,
                                   buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30))
        self._counters = {name: Counter(f"infrawatch_{name}", name.replace("_", " "), ["service"],
                                        registry=self.registry) for name in COUNTERS}
        self._errors = Counter("infrawatch_errors", "errors by type", ["service", "type"], registry=self.registry)
        self._gauges: dict[str, Gauge] = {}
        self._gauge_values: dict[str, float] = {}
        self.cache_size_entries: int | None = None
        self._totals: dict[tuple[str, object], int] = {}
        self._children: dict[tuple[int, tuple[str, ...]], object] = {}
        self._reset()

    def _reset(self) -> None:
        self.w_total = self.w_ok = self.w_failed = self.w_cached = 0
        self.w_durations: list[float] = []
        self.w_counters = dict.fromkeys(COUNTERS, 0)
        self.w_errors: dict[str, int] = {}

    def operation(self, status: str, duration_ms: float, cached: bool = False, error_type: str | None = None) -> None:
        """Record one operation (a collection, a batch event, a read)."""
        self.w_total += 1
        if status in ("success", "partial"):
            self.w_ok += 1
        else:
            self.w_failed += 1
        if cached:
            self.w_cached += 1
            self._child(self._cached).inc()
        self.w_durations.append(duration_ms)
        self._child(self._ops, status).inc()
        self._child(self._duration).observe(duration_ms / 1000)
        if error_type:
            self.error(error_type)

    def _child(self, metric: MetricWrapperBase, *labels: str) -> Any:
        """The metric's child for this service and ``labels``, looked up once (labels() takes a lock)."""
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(self.service, *labels)
        return child

    def add(self, name: str, n: int = 1) -> None:
        """Add to one of COUNTERS (connections, commands, bytes, database writes…)."""
        self.w_counters[name] += n
        self._child(self._counters[name]).inc(n)

    def observe_total(self, name: str, total: int, key: object = None) -> None:
        """Feed a running total kept elsewhere (e.g. a transport's commands); the increase is added."""
        k = (name, key)
        last = self._totals.get(k, 0)
        if total > last:
            self.add(name, total - last)
        self._totals[k] = total

    def error(self, error_type: str) -> None:
        self.w_errors[error_type] = self.w_errors.get(error_type, 0) + 1
        self._child(self._errors, error_type).inc()

    def gauge(self, name: str, value: float, help: str = "") -> None:
        """Set a level such as a consumer's lag; it is reported as is, not summed."""
        if name not in self._gauges:
            self._gauges[name] = Gauge(f"infrawatch_{name}", help or name.replace("_", " "), ["service"],
                                       registry=self.registry)
        self._gauges[name].labels(self.service).set(value)
        self._gauge_values[name] = value

    def metrics_text(self) -> bytes:
        return generate_latest(self.registry)

    def report(self, instance: str, window_s: float) -> PerfReported:
        """The event for the window that just ended; starts a new window."""
        d = self.w_durations
        ev = events.new_event(
            PerfReported, service=self.service, instance=instance, trigger="poll", window_s=window_s,
            operations_total=self.w_total, operations_successful=self.w_ok, operations_failed=self.w_failed,
            operations_cached=self.w_cached,
            avg_duration_ms=round(sum(d) / len(d), 2) if d else None,
            min_duration_ms=round(min(d), 2) if d else None, max_duration_ms=round(max(d), 2) if d else None,
            cache_hit_ratio=round(100.0 * self.w_cached / self.w_total, 2) if self.w_total else None,
            cache_size_entries=self.cache_size_entries, error_types=dict(self.w_errors),
            gauges=dict(self._gauge_values), **self.w_counters,
        )
        self._reset()
        return ev


async def publish_loop(js: JetStreamContext, settings: Settings, perf: Perf, stop: asyncio.Event,
                       before: Callable[[], Awaitable[object]] | None = None) -> None:
    """Publish ``perf.report`` every ``perf_interval_s`` until ``stop``; ``before()`` may refresh gauges."""
    names = Names(settings.subject_prefix)
    loop = asyncio.get_running_loop()
    started = loop.time()
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=settings.perf_interval_s)
        except TimeoutError:
            pass
        now = loop.time()
        try:
            if before is not None:
                await before()
            await publish_event(js, names.perf(perf.service), perf.report(settings.instance, now - started))
        except Exception as exc:  # counters are never worth stopping a service for
            log.warning("perf report not published: %s", exc)
        started = now


def serve_metrics(perf: Perf, settings: Settings) -> int | None:
    """Serve /metrics in a thread; returns the port, or None when off or the port is taken."""
    port = settings.metrics_port or DEFAULT_METRICS_PORTS.get(perf.service, 0)
    if port <= 0:
        return None
    try:
        start_http_server(port, addr=settings.metrics_host, registry=perf.registry)
    except OSError as exc:
        log.warning("/metrics not served on %s:%d: %s", settings.metrics_host, port, exc)
        return None
    log.info("/metrics on http://%s:%d/metrics", settings.metrics_host, port)
    return port
