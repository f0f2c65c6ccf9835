"""The writer at volume: kill -9 in a 50,000-event ingest, a 20 s database outage, two writers."""

from __future__ import annotations

import asyncio
import signal
import uuid

import pytest
from nats.js.errors import NotFoundError

from schema.migrate import upgrade
from services.writer.service import run
from shared.names import Names
from shared.runtime.embedded import PostgresServer
from tests.factories import metrics_series
from tests.util import fetchval, publish_many, start_service, wait_until

pytestmark = pytest.mark.faults


async def _count(url: str, table: str = "system_metrics") -> int:
    return await fetchval(url, f"SELECT count(*) FROM {table}")


async def _at_least(url: str, n: int, table: str = "system_metrics") -> bool:
    return await _count(url, table) >= n


async def _drained(js, stream: str, durable: str) -> bool:
    try:
        info = await js.consumer_info(stream, durable)
    except NotFoundError:
        return False
    return info.num_pending == 0 and info.num_ack_pending == 0


async def test_kill_9_during_a_50000_event_ingest_leaves_exactly_50000_rows(settings, js, tmp_path):
    total = 50_000
    names = Names(settings.subject_prefix)
    subject = names.collected("dev1", "system_metrics")
    series = metrics_series(uuid.uuid4(), total)
    pub = asyncio.create_task(publish_many(js, subject, series))
    proc = await start_service("writer", settings, tmp_path / "writer1.log")
    await wait_until(lambda: _at_least(settings.database_url, 5_000), timeout=120, what="ingest under way")
    proc.send_signal(signal.SIGKILL)
    await proc.wait()
    killed_at = await _count(settings.database_url)
    assert killed_at < total, "the writer must be killed in the middle of the ingest"
    proc = await start_service("writer", settings, tmp_path / "writer2.log")
    try:
        await pub
        await wait_until(lambda: _drained(js, names.stream_collected, settings.writer_durable), timeout=300,
                         interval=0.5, what="all events acknowledged")
        assert await _count(settings.database_url) == total
        assert await fetchval(settings.database_url, "SELECT count(DISTINCT event_id) FROM system_metrics") == total
        assert await _count(settings.database_url, "data_collection_audit") == total
    finally:
        proc.terminate()
        await proc.wait()


async def test_two_writers_on_one_durable_consumer_write_each_event_once(settings, js):
    total = 5_000
    names = Names(settings.subject_prefix)
    settings = settings.model_copy(update={"writer_batch_size": 200})
    stops = [asyncio.Event(), asyncio.Event()]
    tasks = [asyncio.create_task(run(settings.model_copy(update={"instance": f"w{i}"}), s))
             for i, s in enumerate(stops)]
    try:
        await publish_many(js, names.collected("dev1", "system_metrics"), metrics_series(uuid.uuid4(), total))
        await wait_until(lambda: _drained(js, names.stream_collected, settings.writer_durable), timeout=180,
                         interval=0.5, what="all events acknowledged")
        assert await _count(settings.database_url) == total
        assert await _count(settings.database_url, "data_collection_audit") == total
        info = await js.consumer_info(names.stream_collected, settings.writer_durable)
        assert info.num_redelivered == 0, "no event may be delivered to both writers"
    finally:
        for s in stops:
            s.set()
        await asyncio.gather(*(asyncio.wait_for(t, 30) for t in tasks))


async def test_database_stopped_for_20_s_during_ingest_loses_nothing(nats_url, tmp_path):
    from shared.runtime.bootstrap import ensure
    from shared.runtime.nats_conn import connect
    from shared.settings import Settings

    pg = PostgresServer(tmp_path / "pg").start()
    nc = None
    try:
        await asyncio.to_thread(upgrade, pg.url)
        settings = Settings(nats_url=nats_url, database_url=pg.url, subject_prefix=f"t{uuid.uuid4().hex[:10]}",
                            data_dir=tmp_path, writer_batch_wait_s=0.2, instance="test")
        nc = await connect(settings, "test")
        js = nc.jetstream()
        await ensure(js, settings)
        names = Names(settings.subject_prefix)
        subject = names.collected("dev1", "system_metrics")
        series = metrics_series(uuid.uuid4(), 3_000)
        stop = asyncio.Event()
        task = asyncio.create_task(run(settings, stop))

        async def trickle(evs):
            for i in range(0, len(evs), 100):
                await publish_many(js, subject, evs[i:i + 100])
                await asyncio.sleep(0.2)

        pub = asyncio.create_task(trickle(series))
        await wait_until(lambda: _at_least(pg.url, 300), timeout=60, what="ingest under way")
        await asyncio.to_thread(pg.stop)
        await asyncio.sleep(20)
        assert not task.done(), "the writer must wait for the database, not crash"
        await asyncio.to_thread(pg.start)
        await pub
        await wait_until(lambda: _drained(js, names.stream_collected, settings.writer_durable), timeout=180,
                         interval=0.5, what="all events acknowledged")
        assert await _count(pg.url) == 3_000
        assert await _count(pg.url, "data_collection_audit") == 3_000
        stop.set()
        await asyncio.wait_for(task, 30)
    finally:
        if nc is not None:
            await nc.close()
        pg.stop()
