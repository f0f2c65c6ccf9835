"""The audit trail, service performance metrics, cache statistics and cache invalidation."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import asyncpg

from shared.names import Names
from tests.api.conftest import auth, put_cached
from tests.util import wait_until

T0 = datetime(2024, 6, 1, 8, 0, tzinfo=timezone.utc)


async def _audit(conn, device_id, minutes, data_type, trigger, status, cache_hit=False, method="ssh"):
    await conn.execute(
        "INSERT INTO data_collection_audit (time, event_id, device_id, operation_id, data_type, collection_method, "
        "trigger, cache_hit, status, force_refresh, ssh_command_count, records_created, records_updated) "
        "VALUES ($1, $2, $3, $2, $4, $5, $6, $7, $8, false, 1, 1, 0)",
        T0 + timedelta(minutes=minutes), uuid.uuid4(), device_id, data_type, method, trigger, cache_hit, status,
    )


async def test_audit_trail_filters_and_pages(settings, client, keys, device):
    dev = uuid.UUID(device["id"])
    conn = await asyncpg.connect(settings.database_url)
    try:
        await _audit(conn, dev, 0, "system_metrics", "poll", "success")
        await _audit(conn, dev, 1, "system_metrics", "refresh", "error")
        await _audit(conn, dev, 2, "system_metrics", "api", "success", cache_hit=True, method="cache")
        await _audit(conn, dev, 3, "containers", "poll", "unsupported")
        await _audit(conn, uuid.uuid4(), 4, "system_metrics", "poll", "success")
    finally:
        await conn.close()
    h = auth(keys["viewer"])

    async def minutes(**params) -> list[int]:
        r = await client.get("/audit", params=params, headers=h)
        assert r.status_code == 200, r.text
        return [int((datetime.fromisoformat(a["time"]) - T0).total_seconds() // 60) for a in r.json()["items"]]

    assert await minutes() == [4, 3, 2, 1, 0]
    assert await minutes(device="web-1") == [3, 2, 1, 0]
    assert await minutes(device="web-1", data_type="system_metrics", trigger="poll") == [0]
    assert await minutes(status="error") == [1]
    assert await minutes(cache_hit="true") == [2]
    assert await minutes(start=(T0 + timedelta(minutes=1)).isoformat(), end=(T0 + timedelta(minutes=3)).isoformat()) \
        == [2, 1]
    page = (await client.get("/audit", params={"page": 2, "page_size": 2}, headers=h)).json()
    assert (page["total_count"], page["total_pages"], len(page["items"])) == (5, 3, 2)
    r = await client.get("/audit", params={"trigger": "cron"}, headers=h)
    assert r.status_code == 422 and r.json()["message"].startswith("trigger:")


async def test_performance_metrics(settings, client, keys):
    conn = await asyncpg.connect(settings.database_url)
    try:
        for minutes, service in ((0, "collector"), (1, "writer"), (2, "collector")):
            await conn.execute(
                "INSERT INTO service_performance_metrics (time, service_name, instance, operations_total, "
                "operations_successful, operations_failed, operations_cached, avg_duration_ms, "
                "ssh_connections_created, ssh_connections_reused, ssh_commands_executed, cache_evictions, "
                "data_collected_bytes, database_writes) VALUES ($1, $2, 'i1', 10, 9, 1, 0, 12.5, 1, 9, 10, 0, 100, 0)",
                T0 + timedelta(minutes=minutes), service,
            )
    finally:
        await conn.close()
    h = auth(keys["viewer"])
    rows = (await client.get("/performance", headers=h)).json()["items"]
    assert [r["service_name"] for r in rows] == ["collector", "writer", "collector"]
    assert rows[0]["avg_duration_ms"] == 12.5 and rows[0]["operations_failed"] == 1
    only = (await client.get("/performance", params={"service": "writer"}, headers=h)).json()
    assert only["total_count"] == 1


async def test_cache_stats_count_entries_and_this_instances_hits(app, js, settings, client, keys, device):
    h = auth(keys["viewer"])
    await put_cached(app, js, settings, device, age_s=1)
    for _ in range(3):
        assert (await client.get("/devices/web-1/data/system_metrics", headers=h)).status_code == 200
    stats = (await client.get("/cache/stats", headers=h)).json()
    assert stats["entries"] == 1 and stats["hits"] == 3 and stats["misses"] == 0 and stats["hit_ratio"] == 1.0
    assert stats["by_data_type"]["system_metrics"] == {"entries": 1, "fresh": 1, "stale": 0, "hits": 3, "misses": 0}
    await wait_until(lambda: app.state.auditor.published == 3)
    assert (await client.get("/cache/stats", headers=h)).json()["audit_published"] == 3


async def test_invalidate_deletes_the_kv_entry(app, js, settings, client, keys, device):
    await put_cached(app, js, settings, device)
    r = await client.delete("/cache/web-1/system_metrics", headers=auth(keys["operator"]))
    assert r.status_code == 204
    kv = await js.key_value(Names(settings.subject_prefix).cache_bucket)
    assert [k async for k in _keys(kv)] == []
    r = await client.get("/devices/web-1/data/system_metrics", headers=auth(keys["viewer"]))
    assert r.status_code == 504  # nothing cached any more: a refresh was asked for
    assert (await client.delete("/cache/ghost/system_metrics", headers=auth(keys["operator"]))).status_code == 404
    assert (await client.delete("/cache/web-1/nope", headers=auth(keys["operator"]))).status_code == 422


async def _keys(kv):
    try:
        for k in await kv.keys():
            yield k
    except Exception:  # no keys left
        return


async def test_api_metrics_count_reads_and_parse_as_prometheus_text(client, keys, js, settings):
    from prometheus_client.parser import text_string_to_metric_families

    r = await client.get("/metrics", headers={"Authorization": f"Bearer {keys['viewer']}"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    families = {f.name for f in text_string_to_metric_families(r.text)}
    assert {"infrawatch_operations", "infrawatch_operation_duration_seconds"} <= families
    assert (await client.get("/metrics")).status_code == 401
