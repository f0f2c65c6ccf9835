"""The database disk fills: the writer's metric table lives on a 2 MiB tmpfs. Writes are refused
with DiskFullError, nothing is acknowledged or dead-lettered, other tables keep working, and once
the disk is grown every event arrives exactly once."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import asyncpg
import pytest

from schema.migrate import upgrade
from services.writer import sink
from services.writer.service import run
from shared.names import Names
from shared.runtime.bootstrap import ensure
from shared.runtime.embedded import PostgresServer, pg_os_user
from shared.runtime.nats_conn import connect
from shared.settings import Settings
from tests.factories import metrics_series
from tests.util import fetch, fetchval, publish_many, wait_until

SMALL = "2m"
LARGE = "64m"
CHUNK = 500
MAX_EVENTS = 40_000  # the small disk holds a few thousand rows; this bounds the fill loop
WAIT_S = 120  # bounds waits on a shared 2-core machine; not a performance assertion


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(reason=f"needs `{name}` (util-linux) on PATH to mount a small tmpfs")
    return path


@pytest.fixture
def small_disk() -> Path:
    """A tmpfs of SMALL bytes owned by PostgreSQL's OS user; unmounted afterwards.

    Mounted outside pytest's temporary root: every pytest run resets that root to mode 0700, and
    PostgreSQL follows the tablespace's absolute path through it."""
    if os.geteuid() != 0:
        pytest.skip(reason="needs root: mounting a tmpfs (mount -t tmpfs) requires CAP_SYS_ADMIN")
    mount, umount = _tool("mount"), _tool("umount")
    user = pg_os_user()
    assert user is not None
    path = Path(tempfile.mkdtemp(prefix="infrawatch-small-disk-"))
    path.chmod(0o711)
    res = subprocess.run([mount, "-t", "tmpfs", "-o", f"size={SMALL},mode=0700,uid={user.pw_uid},gid={user.pw_gid}",
                          "tmpfs", str(path)], capture_output=True, text=True, check=False)
    if res.returncode != 0:
        path.rmdir()
        pytest.skip(reason=f"mount -t tmpfs is not permitted here: {res.stderr.strip() or res.returncode}")
    yield path
    if subprocess.run([umount, str(path)], capture_output=True, check=False).returncode != 0:
        subprocess.run([umount, "--lazy", str(path)], check=True)
    path.rmdir()


@pytest.fixture
def pg(small_disk, tmp_path):
    """A PostgreSQL server of its own (data directory and WAL on the normal disk), stopped before
    the small disk is unmounted."""
    server = PostgresServer(tmp_path / "pg").start()
    yield server
    server.stop()


def _grow(path: Path) -> None:
    subprocess.run([_tool("mount"), "-o", f"remount,size={LARGE}", str(path)], check=True, capture_output=True)


async def _put_metrics_on(url: str, disk: Path) -> None:
    """system_metrics and its indexes (not the audit or perf tables) move to a tablespace on ``disk``."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f"CREATE TABLESPACE small LOCATION '{disk}'")
        await conn.execute("ALTER TABLE system_metrics SET TABLESPACE small")
        for (index,) in await conn.fetch("SELECT indexname FROM pg_indexes WHERE tablename = 'system_metrics'"):
            await conn.execute(f'ALTER INDEX "{index}" SET TABLESPACE small')
        # no vacuum reclaims the space of refused rows while the disk is full: "full" stays full
        await conn.execute("ALTER TABLE system_metrics SET (autovacuum_enabled = false)")
    finally:
        await conn.close()


async def _disk_full_errors(url: str) -> int:
    """database_disk_full errors the writer reported in its perf events (projected by itself)."""
    return await fetchval(url, "SELECT coalesce(sum((error_types->>'database_disk_full')::int), 0) "
                               "FROM service_performance_metrics WHERE service_name = 'writer'")


def test_disk_full_is_an_unavailable_database_not_bad_data() -> None:
    exc = asyncpg.exceptions.DiskFullError("could not extend file: No space left on device")
    assert exc.sqlstate == "53100"
    assert isinstance(exc, asyncpg.exceptions.InsufficientResourcesError)
    assert isinstance(exc, sink.UNAVAILABLE) and not isinstance(exc, sink.DATA_ERRORS)
    assert sink.unavailable_type(exc) == "database_disk_full"


async def test_a_full_disk_refuses_writes_cleanly_and_loses_nothing(pg, small_disk, nats_url, tmp_path,
                                                                    caplog) -> None:
    caplog.set_level(logging.WARNING, logger="services.writer.service")
    await asyncio.to_thread(upgrade, pg.url)
    await _put_metrics_on(pg.url, small_disk)
    relpath = await fetchval(pg.url, "SELECT pg_relation_filepath('system_metrics')")
    assert os.stat(pg.data_dir / relpath).st_dev == os.stat(small_disk).st_dev, "the metric table is on the tmpfs"
    assert os.stat(pg.data_dir / "pg_wal").st_dev != os.stat(small_disk).st_dev, "WAL is not on the small disk"

    settings = Settings(nats_url=nats_url, database_url=pg.url, subject_prefix=f"t{uuid.uuid4().hex[:10]}",
                        data_dir=tmp_path, writer_batch_wait_s=0.2, perf_interval_s=1.0, metrics_port=-1,
                        instance="test")
    names = Names(settings.subject_prefix)
    nc = await connect(settings, "test")
    stop = asyncio.Event()
    task: asyncio.Task | None = None
    try:
        js = nc.jetstream()
        await ensure(js, settings)
        task = asyncio.create_task(run(settings, stop))
        subject = names.collected("dev1", "system_metrics")
        series = metrics_series(uuid.uuid4(), MAX_EVENTS)

        def refused() -> list[logging.LogRecord]:
            return [r for r in caplog.records if r.name == "services.writer.service" and "DiskFullError" in
                    r.getMessage()]

        total = 0

        async def written_or_refused() -> bool:
            return bool(refused()) or await fetchval(pg.url, "SELECT count(*) FROM system_metrics") == total

        while not refused():  # publish in steps the writer keeps up with, until the disk is full
            assert total < MAX_EVENTS, f"{total} events written and the disk never filled"
            await publish_many(js, subject, series[total:total + CHUNK])
            total += CHUNK
            await wait_until(written_or_refused, timeout=WAIT_S, what=f"{total} events written")

        message = refused()[0].getMessage()
        assert message.startswith("database disk full (DiskFullError: ") and "No space left on device" in message

        # refused again on redelivery, and counted; the perf rows themselves are written to another table
        await wait_until(lambda: _disk_full_errors(pg.url), timeout=WAIT_S, what="a disk-full error in the perf rows")

        async def refused_again() -> bool:
            return len(refused()) >= 2

        await wait_until(refused_again, timeout=WAIT_S, what="a refused retry")
        assert not task.done(), "the writer keeps running"

        async def nothing_acked_uncommitted() -> bool:
            info = await js.consumer_info(names.stream_collected, settings.writer_durable)
            rows = await fetchval(pg.url, "SELECT count(*) FROM system_metrics")
            return rows + info.num_pending + info.num_ack_pending == total and rows < total

        await wait_until(nothing_acked_uncommitted, timeout=WAIT_S, what="acknowledged == committed")
        info = await js.consumer_info(names.stream_collected, settings.writer_durable)
        assert info.num_pending + info.num_ack_pending > 0
        assert (await js.stream_info(names.stream_dlq)).state.messages == 0, "nothing dead-lettered"
        # reads, and writes to tables on the normal disk, still work; an event's audit row was
        # refused with its metric row (one transaction)
        rows = await fetchval(pg.url, "SELECT count(*) FROM system_metrics")
        assert await fetchval(pg.url, "SELECT count(*) FROM data_collection_audit") == rows < total
        conn = await asyncpg.connect(pg.url)
        try:
            await conn.execute("CREATE TABLE still_writable (n int)")
            assert await conn.execute("INSERT INTO still_writable SELECT generate_series(1, 1000)") == "INSERT 0 1000"
        finally:
            await conn.close()

        await asyncio.to_thread(_grow, small_disk)

        async def drained() -> bool:
            i = await js.consumer_info(names.stream_collected, settings.writer_durable)
            return i.num_pending == 0 and i.num_ack_pending == 0

        await wait_until(drained, timeout=WAIT_S, interval=0.5, what="all events acknowledged after the disk grew")
        counts = await fetch(pg.url, "SELECT (SELECT count(*) FROM system_metrics) AS rows, "
                                     "(SELECT count(DISTINCT event_id) FROM system_metrics) AS metric_ids, "
                                     "(SELECT count(*) FROM data_collection_audit) AS audit, "
                                     "(SELECT count(DISTINCT event_id) FROM data_collection_audit) AS audit_ids")
        assert dict(counts[0]) == {"rows": total, "metric_ids": total, "audit": total, "audit_ids": total}
        assert (await js.stream_info(names.stream_dlq)).state.messages == 0, "nothing dead-lettered"
        stop.set()
        await asyncio.wait_for(task, 30)
    finally:
        stop.set()
        if task is not None and not task.done():
            await asyncio.gather(asyncio.wait_for(task, 30), return_exceptions=True)
        await nc.close()
