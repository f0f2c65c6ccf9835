"""Replay: drop the database, replay the streams, get the same rows back."""

from __future__ import annotations

import asyncio

import asyncpg
from nats.js.errors import NotFoundError

from schema.migrate import upgrade
from services.writer.replay import replay
from services.writer.service import run
from shared import events
from shared.events import Audited
from shared.names import Names
from shared.runtime import devices
from shared.runtime.publish import publish_event
from tests.factories import device_event, metrics_event, metrics_series
from tests.util import fetch, wait_until

TABLES = ("devices", "system_metrics", "data_collection_audit", "service_performance_metrics",
          "configuration_snapshots", "configuration_change_events")


async def _dump(url: str) -> dict[str, list[dict]]:
    out = {}
    for t in TABLES:
        rows = await fetch(url, f"SELECT * FROM {t}")
        out[t] = sorted((dict(r) for r in rows), key=repr)
    return out


async def _drained(js, names, durable):
    for stream in (names.stream_collected, names.stream_devices, names.stream_audit):
        try:
            info = await js.consumer_info(stream, durable)
        except NotFoundError:
            return False
        if info.num_pending or info.num_ack_pending:
            return False
    return True


async def test_replay_after_dropping_the_database_gives_identical_tables(settings, js, pg_admin_url):
    names = Names(settings.subject_prefix)
    web = await devices.register(js, names, device_event("web").spec, "test", "t")
    db = await devices.register(js, names, device_event("db").spec, "test", "t")
    await devices.remove(js, names, "db", "test", "t")
    for ev in metrics_series(web.spec.id, 30, "web"):
        await publish_event(js, names.collected("web", "system_metrics"), ev)
    await publish_event(js, names.collected("web", "system_metrics"), metrics_event(web.spec.id, "web", status="error"))
    await publish_event(js, names.audit("api"), events.new_event(
        Audited, action="read", data_type="system_metrics", cache_hit=True, device_id=web.spec.id, device="web",
        service="api", instance="t", trigger="api"))
    await js.publish(names.collected("web", "system_metrics"), b"not an event")

    stop = asyncio.Event()
    task = asyncio.create_task(run(settings, stop))
    await wait_until(lambda: _drained(js, names, settings.writer_durable), timeout=60, what="writer drained")
    stop.set()
    await asyncio.wait_for(task, 30)
    before = await _dump(settings.database_url)
    assert len(before["system_metrics"]) == 30 and len(before["data_collection_audit"]) == 32
    assert {d["name"]: d["deleted_at"] is not None for d in before["devices"]} == {"web": False, "db": True}
    assert db.spec.id in {d["id"] for d in before["devices"]}

    dbname = settings.database_url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(pg_admin_url)
    try:
        await conn.execute(f'DROP DATABASE "{dbname}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{dbname}"')
    finally:
        await conn.close()
    await asyncio.to_thread(upgrade, settings.database_url)
    assert (await _dump(settings.database_url))["system_metrics"] == []

    seen: dict[str, tuple[int, int]] = {}
    result = await replay(settings, progress=lambda k, done, total: seen.__setitem__(k, (done, total)))
    assert result.events["collected"] == 32 and result.skipped["collected"] == 1
    assert seen["collected"] == (32, 32) and seen["device"] == (3, 3)
    assert await _dump(settings.database_url) == before

    again = await replay(settings, kinds=["collected"], seq=5)
    assert again.events == {"collected": 28}
    assert await _dump(settings.database_url) == before, "a second replay must add nothing"
