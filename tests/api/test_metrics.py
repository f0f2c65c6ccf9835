"""Latest metrics from the cache mirror or the database, and ranges from the database."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import asyncpg

from shared import events
from shared.events import SystemMetricsCollected
from shared.names import Names
from shared.payloads.system_metrics import Filesystem, SystemMetrics
from tests.api.conftest import auth, eventually

PAYLOAD = SystemMetrics(
    cpu_percent=12.5, cpu_count=4, memory_total_bytes=8 << 30, memory_available_bytes=6 << 30,
    memory_used_bytes=2 << 30, memory_percent=25.0, load_1=0.5, load_5=0.4, load_15=0.3, uptime_seconds=3600.0,
    filesystems=[Filesystem(device="/dev/sda1", mount="/", fstype="ext4", total_bytes=100, used_bytes=40,
                            available_bytes=60, used_percent=40.0)],
)


async def _insert_rows(url: str, device_id: uuid.UUID, times: list[datetime]) -> None:
    conn = await asyncpg.connect(url)
    try:
        for i, t in enumerate(times):
            await conn.execute(
                "INSERT INTO system_metrics (time, device_id, event_id, cpu_usage, cpu_count, memory_usage, "
                "memory_total_bytes, memory_used_bytes, memory_available_bytes, load_1, load_5, load_15, "
                "uptime_seconds, disk_usage) VALUES ($1, $2, $3, $4, 2, 50.0, 100, 50, 50, 1, 1, 1, 60, $5)",
                t, device_id, uuid.uuid4(), float(i), '[{"device": "/dev/vda1", "mount": "/", "fstype": "xfs", '
                '"total_bytes": 10, "used_bytes": 5, "available_bytes": 5, "used_percent": 50.0}]',
            )
    finally:
        await conn.close()


async def test_latest_from_the_cache(app, js, settings, client, keys, device):
    names = Names(settings.subject_prefix)
    ev = events.new_event(
        SystemMetricsCollected, device_id=uuid.UUID(device["id"]), device="web-1", service="collector",
        instance="c1", trigger="poll", payload=PAYLOAD, occurred_at=datetime.now(timezone.utc) - timedelta(seconds=5),
    )
    kv = await js.key_value(names.cache_bucket)
    key = Names.cache_key("web-1", "system_metrics")
    await kv.put(key, events.encode(ev))
    await eventually(lambda: app.state.cache.get(key) is not None)
    r = await client.get("/devices/web-1/metrics", headers=auth(keys["viewer"]))
    assert r.status_code == 200, r.text
    m = r.json()
    assert m["source"] == "cache" and m["cpu_percent"] == 12.5 and m["filesystems"][0]["mount"] == "/"
    assert m["device_id"] == device["id"] and m["age_seconds"] >= 5
    assert datetime.fromisoformat(m["time"]) == ev.occurred_at

    await kv.delete(key)
    await eventually(lambda: app.state.cache.get(key) is None)
    assert (await client.get("/devices/web-1/metrics", headers=auth(keys["viewer"]))).status_code == 404


async def test_cache_of_an_earlier_device_with_the_same_name_is_ignored(app, js, settings, client, keys, device):
    names = Names(settings.subject_prefix)
    ev = events.new_event(SystemMetricsCollected, device_id=uuid.uuid4(), device="web-1", service="collector",
                          instance="c1", trigger="poll", payload=PAYLOAD)
    key = Names.cache_key("web-1", "system_metrics")
    await (await js.key_value(names.cache_bucket)).put(key, events.encode(ev))
    await eventually(lambda: app.state.cache.get(key) is not None)
    assert (await client.get("/devices/web-1/metrics", headers=auth(keys["viewer"]))).status_code == 404


async def test_latest_from_the_database_when_the_cache_is_empty(settings, client, keys, device):
    now = datetime.now(timezone.utc)
    await _insert_rows(settings.database_url, uuid.UUID(device["id"]), [now - timedelta(minutes=10), now])
    r = await client.get(f"/devices/{device['id']}/metrics", headers=auth(keys["viewer"]))
    assert r.status_code == 200, r.text
    m = r.json()
    assert m["source"] == "database" and m["cpu_percent"] == 1.0 and m["memory_percent"] == 50.0
    assert datetime.fromisoformat(m["time"]) == now and m["filesystems"][0]["fstype"] == "xfs"


async def test_no_data_or_unknown_device_is_404(client, keys, device):
    h = auth(keys["viewer"])
    r = await client.get("/devices/web-1/metrics", headers=h)
    assert r.status_code == 404 and "no system metrics" in r.json()["detail"]
    assert (await client.get("/devices/ghost/metrics", headers=h)).status_code == 404


async def test_range_is_ordered_and_paginated(settings, client, keys, device):
    base = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
    await _insert_rows(settings.database_url, uuid.UUID(device["id"]), [base + timedelta(minutes=i) for i in range(6)])
    h = auth(keys["viewer"])
    params = {"start": (base + timedelta(minutes=1)).isoformat(), "end": (base + timedelta(minutes=5)).isoformat()}
    page = (await client.get("/devices/web-1/metrics", params=params, headers=h)).json()
    assert [row["cpu_usage"] for row in page["items"]] == [1.0, 2.0, 3.0, 4.0]
    assert page["total_count"] == 4 and page["total_pages"] == 1
    page2 = (await client.get("/devices/web-1/metrics", params={**params, "page": 2, "page_size": 3}, headers=h)).json()
    assert [row["cpu_usage"] for row in page2["items"]] == [4.0]
    assert (page2["total_count"], page2["total_pages"]) == (4, 2)
    open_end = (await client.get("/devices/web-1/metrics", params={"start": params["start"]}, headers=h)).json()
    assert open_end["total_count"] == 5


async def test_start_not_before_end_is_422(client, keys, device):
    h = auth(keys["viewer"])
    t = "2024-05-01T12:00:00Z"
    r = await client.get("/devices/web-1/metrics", params={"start": t, "end": t}, headers=h)
    assert r.status_code == 422
    assert "must be before end" in r.text
    future = (datetime.now(timezone.utc) + timedelta(days=1)).isoformat()
    assert (await client.get("/devices/web-1/metrics", params={"start": future}, headers=h)).status_code == 422
    assert (await client.get("/devices/web-1/metrics", params={"end": t}, headers=h)).status_code == 422
