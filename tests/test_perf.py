"""Performance counters: the window report, Prometheus text, and the writer's perf rows."""

from __future__ import annotations

import asyncio
import urllib.request
import uuid

from prometheus_client.parser import text_string_to_metric_families

from services.writer.service import run
from shared.embedded import free_port
from shared.names import Names
from shared.perf import Perf
from shared.publish import publish_event
from tests.factories import metrics_series
from tests.util import fetch, wait_until


def test_report_summarises_the_window_and_starts_a_new_one():
    perf = Perf("collector")
    perf.operation("success", 100.0)
    perf.operation("error", 300.0, error_type="timeout")
    perf.operation("success", 20.0, cached=True)
    perf.add("ssh_connections_created")
    perf.add("ssh_commands_executed", 5)
    perf.gauge("devices", 3)
    ev = perf.report("c1", 60.0)
    assert (ev.operations_total, ev.operations_successful, ev.operations_failed, ev.operations_cached) == (3, 2, 1, 1)
    assert (ev.min_duration_ms, ev.max_duration_ms, ev.avg_duration_ms) == (20.0, 300.0, 140.0)
    assert ev.cache_hit_ratio == 33.33 and ev.error_types == {"timeout": 1}
    assert ev.ssh_connections_created == 1 and ev.ssh_commands_executed == 5 and ev.gauges == {"devices": 3}
    again = perf.report("c1", 60.0)
    assert again.operations_total == 0 and again.avg_duration_ms is None and again.gauges == {"devices": 3}


def test_prometheus_text_parses_and_counts_cumulatively():
    perf = Perf("writer")
    perf.operation("success", 5.0)
    perf.report("w", 1.0)
    perf.operation("success", 5.0)
    perf.add("database_writes", 7)
    families = {f.name: f for f in text_string_to_metric_families(perf.metrics_text().decode())}
    ops = [s for s in families["infrawatch_operations"].samples if s.name == "infrawatch_operations_total"]
    assert ops[0].labels == {"service": "writer", "status": "success"} and ops[0].value == 2
    writes = [s for s in families["infrawatch_database_writes"].samples if s.name.endswith("_total")]
    assert writes[0].value == 7


async def test_writer_publishes_perf_with_lag_and_serves_metrics(settings, js):
    port = free_port()
    settings = settings.model_copy(update={"perf_interval_s": 1.0, "metrics_port": port})
    names = Names(settings.subject_prefix)
    for ev in metrics_series(uuid.uuid4(), 10):
        await publish_event(js, names.collected("dev1", "system_metrics"), ev)
    stop = asyncio.Event()
    task = asyncio.create_task(run(settings, stop))
    try:
        async def perf_row():
            rows = await fetch(settings.database_url, "SELECT * FROM service_performance_metrics "
                                                     "WHERE service_name = 'writer' AND database_writes > 0")
            return rows[0] if rows else None

        row = await wait_until(perf_row, timeout=60, what="a writer perf row with database writes")
        assert row["instance"] == "test" and row["operations_total"] >= 1
        msg = await js.get_last_msg(names.stream_perf, names.perf("writer"))
        assert b'"consumer_lag_collected"' in msg.data

        def scrape() -> str:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                return r.read().decode()

        text = await asyncio.to_thread(scrape)
        names_seen = {f.name for f in text_string_to_metric_families(text)}
        assert {"infrawatch_consumer_lag_collected", "infrawatch_operations", "infrawatch_database_writes"} <= names_seen
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
