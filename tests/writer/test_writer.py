"""The writer against real NATS and PostgreSQL: batches, idempotency, dead letters, kills, outages."""

from __future__ import annotations

import asyncio
import signal
import uuid

import pytest
from nats.js.errors import NotFoundError

from services.writer.service import run
from shared import events
from shared.names import DLQ_REASON, DLQ_STREAM_SEQ, DLQ_SUBJECT, MSG_ID, Names
from shared.runtime import devices
from shared.runtime.publish import publish_event
from tests.factories import device_event, metrics_event, metrics_series
from tests.util import fetch, fetchval, start_service, wait_until


@pytest.fixture
def names(settings) -> Names:
    return Names(settings.subject_prefix)


async def _start(settings):
    stop = asyncio.Event()
    task = asyncio.create_task(run(settings, stop))
    return stop, task


async def _stop(stop, task):
    stop.set()
    await asyncio.wait_for(task, 30)


async def _count(url: str, table: str) -> int:
    return await fetchval(url, f"SELECT count(*) FROM {table}")


async def test_batch_is_projected_and_acknowledged(settings, js, names):
    dev = uuid.uuid4()
    for ev in metrics_series(dev, 50):
        await publish_event(js, names.collected("dev1", "system_metrics"), ev)
    stop, task = await _start(settings)
    try:
        await wait_until(lambda: _at_least(settings.database_url, "system_metrics", 50), what="50 metric rows")
        await wait_until(lambda: _at_least(settings.database_url, "data_collection_audit", 50), what="audit rows")
        info = await wait_until(lambda: _drained(js, names.stream_collected, settings.writer_durable),
                                timeout=60, what="consumer drained")
        assert info.num_ack_pending == 0 and info.num_pending == 0
        assert await _count(settings.database_url, "system_metrics") == 50
    finally:
        await _stop(stop, task)


async def _at_least(url, table, n):
    return await _count(url, table) >= n


async def _drained(js, stream, durable):
    try:
        info = await js.consumer_info(stream, durable)
    except NotFoundError:  # the writer has not created its consumer yet
        return None
    return info if info.num_pending == 0 and info.num_ack_pending == 0 else None


async def test_republished_events_create_no_second_row(settings, js, names):
    dev = uuid.uuid4()
    series = metrics_series(dev, 20)
    subject = names.collected("dev1", "system_metrics")
    for ev in series:
        await publish_event(js, subject, ev)
    # The same events again under other message ids: JetStream cannot de-duplicate them.
    for ev in series:
        await js.publish(subject, events.encode(ev), headers={MSG_ID: f"again-{ev.event_id}"})
    stop, task = await _start(settings)
    try:
        await wait_until(lambda: _drained(js, names.stream_collected, settings.writer_durable), timeout=60,
                         what="drained")
        assert await _count(settings.database_url, "system_metrics") == 20
        assert await _count(settings.database_url, "data_collection_audit") == 20
    finally:
        await _stop(stop, task)


async def test_undecodable_message_is_dead_lettered_and_the_writer_carries_on(settings, js, names):
    subject = names.collected("dev1", "system_metrics")
    garbage = b'{"kind": "collected.system_metrics", "event_id": '  # cut off mid-message
    await js.publish(subject, garbage)
    good = metrics_event(uuid.uuid4())
    await publish_event(js, subject, good)
    stop, task = await _start(settings)
    try:
        await wait_until(lambda: _at_least(settings.database_url, "system_metrics", 1), what="the good event")
        dlq = await wait_until(lambda: _last_dlq(js, names), what="a dead letter")
        assert dlq.data == garbage
        assert "DecodeError" in dlq.headers[DLQ_REASON]
        assert dlq.headers[DLQ_SUBJECT] == subject and dlq.headers[DLQ_STREAM_SEQ] == "1"
        await wait_until(lambda: _drained(js, names.stream_collected, settings.writer_durable), timeout=60,
                         what="drained")
    finally:
        await _stop(stop, task)


async def _last_dlq(js, names):
    try:
        return await js.get_last_msg(names.stream_dlq, names.all("dlq"))
    except Exception:
        return None


async def test_one_event_the_database_refuses_does_not_hold_back_its_batch(settings, js, names):
    dev = uuid.uuid4()
    subject = names.collected("dev1", "system_metrics")
    series = metrics_series(dev, 9)
    bad = metrics_event(dev, duration_ms=1e19)  # past any valid duration: does not fit the BIGINT column
    for ev in [*series[:4], bad, *series[4:]]:
        await publish_event(js, subject, ev)
    stop, task = await _start(settings)
    try:
        await wait_until(lambda: _last_dlq(js, names), what="the bad event dead-lettered")
        await wait_until(lambda: _drained(js, names.stream_collected, settings.writer_durable), timeout=60,
                         what="drained")
        assert await _count(settings.database_url, "data_collection_audit") == 9
        dlq = await _last_dlq(js, names)
        assert "database refused" in dlq.headers[DLQ_REASON]
        assert events.decode(dlq.data).event_id == bad.event_id
    finally:
        await _stop(stop, task)


async def test_device_events_project_into_devices_with_soft_delete(settings, js, names):
    stop, task = await _start(settings)
    try:
        reg = await devices.register(js, names, device_event("web1").spec, "test", "t")
        await wait_until(lambda: _at_least(settings.database_url, "devices", 1), what="device row")
        await devices.remove(js, names, "web1", "test", "t")
        row = await wait_until(
            lambda: _fetch_one(settings.database_url, "SELECT * FROM devices WHERE deleted_at IS NOT NULL"),
            what="soft delete")
        assert row["id"] == reg.spec.id and row["name"] == "web1" and row["stream_seq"] == 2
    finally:
        await _stop(stop, task)


async def _fetch_one(url, sql):
    rows = await fetch(url, sql)
    return rows[0] if rows else None


@pytest.mark.faults
async def test_writer_killed_with_sigkill_loses_and_duplicates_nothing(settings, js, names, tmp_path):
    dev = uuid.uuid4()
    subject = names.collected("dev1", "system_metrics")
    total = 600
    published: list[uuid.UUID] = []

    async def publisher():
        for ev in metrics_series(dev, total):
            await publish_event(js, subject, ev)
            published.append(ev.event_id)
            await asyncio.sleep(0.004)

    pub = asyncio.create_task(publisher())
    proc = await start_service("writer", settings, tmp_path / "writer1.log")
    await wait_until(lambda: _at_least(settings.database_url, "system_metrics", 50), timeout=30,
                     what="writer running")
    proc.send_signal(signal.SIGKILL)
    await proc.wait()
    assert not pub.done(), "metrics must still be flowing when the writer is killed"
    proc = await start_service("writer", settings, tmp_path / "writer2.log")
    try:
        await pub
        # messages the killed writer had fetched come back after the consumer's ack_wait
        await wait_until(lambda: _at_least(settings.database_url, "system_metrics", total), timeout=120,
                         what="all rows")
        await wait_until(lambda: _drained(js, names.stream_collected, settings.writer_durable), timeout=60,
                         what="drained")
        ids = {r["event_id"] for r in await fetch(settings.database_url, "SELECT event_id FROM system_metrics")}
        assert ids == set(published)
        assert await _count(settings.database_url, "system_metrics") == total
        assert await _count(settings.database_url, "data_collection_audit") == total
    finally:
        proc.terminate()
        await proc.wait()
