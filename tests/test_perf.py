"""Performance counters: the window report, Prometheus text, and the writer's perf rows."""

from __future__ import annotations

import asyncio
import uuid

from prometheus_client.parser import text_string_to_metric_families

from services.writer.service import run
from shared.names import Names
from shared.runtime.embedded import free_port
from shared.runtime.perf import Perf
from shared.runtime.publish import publish_event
from tests.factories import metrics_series
from tests.util import fetch, metric_families, metrics_text, perf_row, wait_until


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
        row = await perf_row(settings.database_url, "writer", "database_writes")
        assert row["instance"] == "test" and row["operations_total"] >= 1
        msg = await js.get_last_msg(names.stream_perf, names.perf("writer"))
        assert b'"consumer_lag_collected"' in msg.data
        names_seen = set(await metric_families(port))
        assert {"infrawatch_consumer_lag_collected", "infrawatch_operations", "infrawatch_database_writes"} <= names_seen
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def _scrape(port: int) -> dict[str, float]:
    """Metric family name -> sum of its *_total samples (0 for families without one)."""
    families = list(text_string_to_metric_families(metrics_text(port)))
    return {f.name: sum(s.value for s in f.samples if s.name.endswith("_total")) for f in families}


async def _service_reports(js, names: Names, service: str, check) -> object:
    from shared import events as ev_mod

    async def last():
        try:
            msg = await js.get_last_msg(names.stream_perf, names.perf(service))
        except Exception:
            return None
        ev = ev_mod.decode(msg.data)
        return ev if check(ev) else None

    return await wait_until(last, timeout=60, what=f"a {service} perf event")


async def test_collector_and_watcher_publish_perf_and_serve_metrics(settings, js, tmp_path):
    from services.collector.service import run as run_collector
    from services.collector.settings import CollectorSettings
    from services.watcher.service import run as run_watcher
    from services.watcher.settings import WatcherSettings
    from shared.events import DeviceSpec
    from shared.runtime import devices

    names = Names(settings.subject_prefix)
    root = tmp_path / "root"  # the watched tree, apart from the data directory the transport protects
    (root / "etc" / "systemd" / "system").mkdir(parents=True)
    (root / "etc" / "systemd" / "system" / "app.service").write_text("[Service]\nExecStart=/bin/true\n")
    await devices.register(js, names, DeviceSpec(id=uuid.uuid4(), name="here", transport="local"), "test", "t")
    ports = {"collector": free_port(), "watcher": free_port()}
    base = settings.model_dump() | {"perf_interval_s": 1.0, "data_dir": tmp_path / "data"}
    collector = CollectorSettings(**{**base, "metrics_port": ports["collector"]},
                                  collector_data_types=["system_metrics"], collector_local_devices=["here"])
    watcher = WatcherSettings(**{**base, "metrics_port": ports["watcher"]}, watcher_root_prefix=str(root), watcher_local_devices=["here"],
                              watcher_mode="poll")
    stop = asyncio.Event()
    tasks = [asyncio.create_task(run_collector(collector, stop)), asyncio.create_task(run_watcher(watcher, stop)),
             asyncio.create_task(run(settings.model_copy(update={"perf_interval_s": 1.0, "metrics_port": -1}), stop))]
    try:
        c = await _service_reports(js, names, "collector", lambda e: e.gauges.get("devices") == 1)
        assert c.service == "collector"
        await _service_reports(js, names, "watcher", lambda e: e.gauges.get("devices_watched") == 1)
        for service, port in ports.items():
            async def counted(port=port):
                seen = await asyncio.to_thread(_scrape, port)
                return seen if seen.get("infrawatch_operations", 0) >= 1 else None

            seen = await wait_until(counted, timeout=60, what=f"{service} operations on /metrics")
            assert "infrawatch_operation_duration_seconds" in seen, service

        async def rows_for_both():
            rows = await fetch(settings.database_url, "SELECT DISTINCT service_name FROM service_performance_metrics")
            found = {r["service_name"] for r in rows}
            return found if {"collector", "watcher", "writer"} <= found else None

        await wait_until(rows_for_both, timeout=60, what="perf rows of the collector, watcher and writer")
    finally:
        stop.set()
        await asyncio.gather(*(asyncio.wait_for(t, 60) for t in tasks))
