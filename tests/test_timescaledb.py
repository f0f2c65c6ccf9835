"""TimescaleDB itself: compressed chunks take replayed events and read back through the API; the
background scheduler runs every policy job to success. These tests run on the TimescaleDB server only."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta, timezone

import asyncpg
from nats.js.errors import NotFoundError

from schema.migrate import upgrade
from services.writer.replay import replay
from services.writer.service import run as run_writer
from shared.names import Names
from shared.runtime.publish import publish_event
from tests.api.conftest import api_settings, app, auth, client, device, keys  # noqa: F401  (API fixtures)
from tests.factories import metrics_event
from tests.timescale import COMPRESS_OLD_CHUNKS
from tests.util import fetch, fetchval, wait_until


async def _drained(js, settings) -> bool:
    names = Names(settings.subject_prefix)
    for stream in (names.stream_collected, names.stream_devices):
        try:
            info = await js.consumer_info(stream, settings.writer_durable)
        except NotFoundError:
            return False
        if info.num_pending or info.num_ack_pending:
            return False
    return True


async def _write_through_the_writer(settings, js) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(run_writer(settings.model_copy(update={"metrics_port": -1}), stop))
    try:
        await wait_until(lambda: _drained(js, settings), timeout=60, what="the writer to drain")
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


async def _compressed_chunks(url: str, table: str) -> list[str]:
    rows = await fetch(url, "SELECT chunk_name FROM timescaledb_information.chunks "
                            "WHERE hypertable_name = $1 AND is_compressed", table)
    return [r["chunk_name"] for r in rows]


async def test_replay_into_a_compressed_chunk_adds_each_event_once_and_the_api_reads_them(
        settings, js, client, keys, device):
    names = Names(settings.subject_prefix)
    url = settings.database_url
    device_id = uuid.UUID(device["id"])
    # 20 days back: the chunk holding that hour (7 days wide) ended over 7 days ago, so it can be compressed.
    hour = (datetime.now(timezone.utc) - timedelta(days=20)).replace(minute=0, second=0, microsecond=0)
    subject = names.collected("web-1", "system_metrics")
    for i in range(30):
        await publish_event(js, subject, metrics_event(device_id, "web-1", at=hour + timedelta(minutes=i), cpu=i))
    await _write_through_the_writer(settings, js)
    assert await fetchval(url, "SELECT count(*) FROM system_metrics") == 30

    assert await fetchval(url, COMPRESS_OLD_CHUNKS) >= 2  # system_metrics and data_collection_audit
    compressed = await _compressed_chunks(url, "system_metrics")
    assert len(compressed) == 1
    assert await _compressed_chunks(url, "data_collection_audit")

    # Events for the compressed hour that the database has not seen, then a replay of the whole stream.
    for i in range(30, 60):
        await publish_event(js, subject, metrics_event(device_id, "web-1", at=hour + timedelta(minutes=i), cpu=i))
    result = await replay(settings, kinds=["collected"])
    assert result.events == {"collected": 60} and result.skipped == {"collected": 0}
    assert await fetchval(url, "SELECT count(*) FROM system_metrics") == 60
    assert await fetchval(url, "SELECT count(DISTINCT event_id) FROM data_collection_audit") == 60
    assert await fetchval(url, "SELECT count(*) FROM data_collection_audit") == 60
    assert await _compressed_chunks(url, "system_metrics") == compressed  # the chunk stays compressed

    h = auth(keys["viewer"])
    params = {"start": hour.isoformat(), "end": (hour + timedelta(hours=1)).isoformat(), "page_size": 100}
    r = await client.get("/devices/web-1/metrics", params=params, headers=h)
    assert r.status_code == 200, r.text
    page = r.json()
    assert page["total_count"] == 60
    assert [row["cpu_usage"] for row in page["items"]] == [float(i) for i in range(60)]
    assert [datetime.fromisoformat(row["time"]) for row in page["items"]] == [
        hour + timedelta(minutes=i) for i in range(60)]

    r = await client.get("/devices/web-1/metrics", params={**params, "bucket": "1h"}, headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["function"] == "time_bucket"
    assert [(datetime.fromisoformat(b["bucket"]), b["samples"], b["cpu_avg"], b["cpu_max"]) for b in body["items"]] \
        == [(hour, 60, 29.5, 59.0)]

    # A second replay adds nothing, compressed chunk or not.
    again = await replay(settings, kinds=["collected"])
    assert again.events == {"collected": 60}
    assert await fetchval(url, "SELECT count(*) FROM system_metrics") == 60


async def _job_stats(url: str) -> list[asyncpg.Record]:
    return await fetch(url, """
        SELECT j.job_id, j.proc_name, j.hypertable_name, s.job_status, s.total_runs, s.total_failures,
               s.last_run_status
        FROM timescaledb_information.jobs j
        LEFT JOIN timescaledb_information.job_stats s USING (job_id)
        WHERE j.hypertable_schema = current_schema()""")


async def test_the_scheduler_runs_every_policy_job_to_success(empty_database_url):
    # Migrated here rather than copied from the template: a copy inherits the template's job
    # statistics, with any job its sealing interrupted still marked as running.
    url = empty_database_url
    await asyncio.to_thread(upgrade, url)
    old = datetime.now(timezone.utc) - timedelta(days=20)
    conn = await asyncpg.connect(url)
    try:
        # 20 rows old enough to compress, 5 inside the continuous aggregates' refresh window.
        for at, n in ((old, 20), (datetime.now(timezone.utc) - timedelta(hours=2), 5)):
            await conn.execute(
                "INSERT INTO system_metrics (time, device_id, event_id, cpu_usage) "
                "SELECT $1::timestamptz - make_interval(mins => i), $2, gen_random_uuid(), i "
                "FROM generate_series(1, $3::int) i",
                at, uuid.uuid4(), n)
        runs_before = {r["job_id"]: r["total_runs"] or 0 for r in await _job_stats(url)}
        await conn.execute("SELECT alter_job(job_id, next_start => now()) FROM timescaledb_information.jobs "
                           "WHERE hypertable_schema = current_schema()")
    finally:
        await conn.close()

    async def all_ran():
        if not await fetchval(url, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                   "AND backend_type = 'TimescaleDB Background Worker Scheduler'"):
            await fetchval(url, "SELECT _timescaledb_functions.start_background_workers()")
            return None
        stats = await _job_stats(url)
        done = all((s["total_runs"] or 0) > runs_before[s["job_id"]] and s["job_status"] != "Running"
                   and s["last_run_status"] for s in stats)
        return stats if done else None

    try:
        stats = await wait_until(all_ran, timeout=180, interval=0.5, what="every policy job to run once more")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {[dict(s) for s in await _job_stats(url)]}") from None
    kinds = {s["proc_name"] for s in stats}
    assert {"policy_compression", "policy_retention", "policy_refresh_continuous_aggregate"} <= kinds
    failed = [dict(s) for s in stats if s["last_run_status"] != "Success" or s["total_failures"]]
    assert failed == []
    assert await _compressed_chunks(url, "system_metrics")
    (view,) = await fetch(url, "SELECT materialization_hypertable_schema AS s, materialization_hypertable_name AS t "
                               "FROM timescaledb_information.continuous_aggregates "
                               "WHERE view_name = 'system_metrics_hourly'")
    assert await fetchval(url, f'SELECT sum(sample_count) FROM "{view["s"]}"."{view["t"]}"') == 5
