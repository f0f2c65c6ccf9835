"""Latest metrics from the fresh cache (else a refresh), and stored ranges, paged or bucketed."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import asyncpg

from shared.names import Names
from tests.api.conftest import auth, put_cached
from tests.util import wait_until


async def _insert_rows(url: str, device_id: uuid.UUID, times: list[datetime], cpu: list[float] | None = None) -> None:
    conn = await asyncpg.connect(url)
    try:
        for i, t in enumerate(times):
            await conn.execute(
                "INSERT INTO system_metrics (time, device_id, event_id, cpu_usage, cpu_count, memory_usage, "
                "memory_total_bytes, memory_used_bytes, memory_available_bytes, load_1, load_5, load_15, "
                "uptime_seconds, disk_usage) VALUES ($1, $2, $3, $4, 2, 50.0, 100, 50, 50, 1, 1, 1, 60, $5)",
                t, device_id, uuid.uuid4(), cpu[i] if cpu else float(i), '[{"device": "/dev/vda1", "mount": "/", '
                '"fstype": "xfs", "total_bytes": 10, "used_bytes": 5, "available_bytes": 5, "used_percent": 50.0}]',
            )
    finally:
        await conn.close()


async def test_latest_from_the_fresh_cache(app, js, settings, client, keys, device):
    ev = await put_cached(app, js, settings, device, age_s=5)
    r = await client.get("/devices/web-1/metrics", headers=auth(keys["viewer"]))
    assert r.status_code == 200, r.text
    m = r.json()
    assert m["source"] == "cache" and m["cpu_percent"] == 12.5 and m["filesystems"][0]["mount"] == "/"
    assert m["device_id"] == device["id"] and m["age_seconds"] >= 5
    assert datetime.fromisoformat(m["time"]) == ev.occurred_at


async def test_missing_or_stale_value_asks_for_a_refresh_and_times_out_with_its_operation(
    app, js, settings, client, keys, device
):
    h = auth(keys["viewer"])
    r = await client.get("/devices/web-1/metrics", headers=h)  # nothing cached, no collector running
    assert r.status_code == 504, r.text
    assert uuid.UUID(r.json()["operation_id"])
    await put_cached(app, js, settings, device, age_s=301)  # system_metrics are fresh for 300 s
    r = await client.get("/devices/web-1/metrics", headers=h)
    assert r.status_code == 504 and "timed out" in r.json()["detail"]


async def test_cache_of_an_earlier_device_with_the_same_name_is_ignored(app, js, settings, client, keys, device):
    await put_cached(app, js, settings, {**device, "id": str(uuid.uuid4())})
    assert (await client.get("/devices/web-1/metrics", headers=auth(keys["viewer"]))).status_code == 504


async def test_force_refresh_needs_an_operator(app, js, settings, client, keys, device):
    await put_cached(app, js, settings, device)
    r = await client.get("/devices/web-1/metrics", params={"force_refresh": "true"}, headers=auth(keys["viewer"]))
    assert r.status_code == 403 and "operator" in r.json()["detail"]
    r = await client.get("/devices/web-1/metrics", params={"force_refresh": "true"}, headers=auth(keys["operator"]))
    assert r.status_code == 504  # fresh cache ignored: a refresh was asked for


async def test_unknown_device_is_404(client, keys):
    assert (await client.get("/devices/ghost/metrics", headers=auth(keys["viewer"]))).status_code == 404


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


async def test_range_in_time_buckets(app, settings, client, keys, device):
    base = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
    times = [base + timedelta(minutes=m) for m in (0, 2, 4, 5, 9, 10)]
    await _insert_rows(settings.database_url, uuid.UUID(device["id"]), times, cpu=[10, 20, 30, 40, 50, 60])
    params = {"start": base.isoformat(), "end": (base + timedelta(minutes=15)).isoformat(), "bucket": "5m"}
    r = await client.get("/devices/web-1/metrics", params=params, headers=auth(keys["viewer"]))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["function"] == ("time_bucket" if app.state.timescaledb else "date_bin")
    got = [(datetime.fromisoformat(b["bucket"]), b["samples"], b["cpu_avg"], b["cpu_max"]) for b in body["items"]]
    assert got == [(base, 3, 20.0, 30.0), (base + timedelta(minutes=5), 2, 45.0, 50.0),
                   (base + timedelta(minutes=10), 1, 60.0, 60.0)]


async def test_invalid_bucket_or_range_is_422_naming_the_field(client, keys, device):
    h = auth(keys["viewer"])
    start = "2024-05-01T12:00:00Z"
    for bucket, reason in (("30s", "between 1m and 1d"), ("2d", "between 1m and 1d"), ("5x", "unit s, m, h or d"),
                           ("", "unit s, m, h or d")):
        r = await client.get("/devices/web-1/metrics", params={"start": start, "bucket": bucket}, headers=h)
        assert r.status_code == 422, bucket
        assert reason in r.json()["message"], r.json()
    r = await client.get("/devices/web-1/metrics", params={"start": "2000-01-01T00:00:00Z", "bucket": "1m"}, headers=h)
    assert r.status_code == 422 and "bucket" in r.json()["message"] and "10000" in r.json()["message"]
    r = await client.get("/devices/web-1/metrics", params={"bucket": "5m"}, headers=h)
    assert r.status_code == 422 and "bucket needs a start" in r.json()["message"]


async def test_a_window_ending_at_or_before_its_start_is_empty(client, keys, device):
    h = auth(keys["viewer"])
    t, before = "2024-05-01T12:00:00Z", "2024-05-01T11:00:00Z"
    for end in (t, before):  # [t, t) and [t, t - 1h) hold no time
        r = await client.get("/devices/web-1/metrics", params={"start": t, "end": end}, headers=h)
        assert r.status_code == 200 and r.json()["items"] == []
    r = await client.get("/devices/web-1/metrics", params={"start": 1714560000}, headers=h)  # epoch: not RFC 3339
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "start"]
    future = (datetime.now(timezone.utc) + timedelta(days=1)).isoformat()
    r = await client.get("/devices/web-1/metrics", params={"start": future}, headers=h)  # until now: nothing
    assert r.status_code == 200 and r.json()["items"] == []
    assert (await client.get("/devices/web-1/metrics", params={"end": t}, headers=h)).status_code == 422
    r = await client.get("/devices/web-1/metrics", params={"start": "0001-01-01T00:00:00+23:00"}, headers=h)
    assert r.status_code == 422 and "out of range" in r.text
    r = await client.get("/devices/web-1/metrics", params={"start": "yesterday"}, headers=h)
    assert r.status_code == 422 and r.json()["message"].startswith("start:")


async def test_every_read_is_audited(app, js, settings, client, keys, device):
    names = Names(settings.subject_prefix)
    await put_cached(app, js, settings, device)
    assert (await client.get("/devices/web-1/metrics", headers=auth(keys["viewer"]))).status_code == 200
    r = await client.get("/devices/web-1/metrics", params={"force_refresh": "true"}, headers=auth(keys["operator"]))
    assert r.status_code == 504

    async def audited() -> int:
        info = await js.stream_info(names.stream_audit)
        return info.state.messages

    subject = names.audit("api")
    await wait_until(lambda: app.state.auditor.published == 2)
    assert await audited() == 2
    from shared import events
    first = events.decode((await js.get_msg(names.stream_audit, 1)).data)
    second = events.decode((await js.get_msg(names.stream_audit, 2)).data)
    assert (first.cache_hit, first.force_refresh, first.status, first.data_type) == (True, False, "success",
                                                                                    "system_metrics")
    assert (second.cache_hit, second.force_refresh, second.status) == (False, True, "error")
    assert str(second.operation_id) == r.json()["operation_id"]
    assert subject.endswith(".audit.api") and first.device_id == uuid.UUID(device["id"])


async def test_buckets_body_is_the_documented_model(settings, client, keys, device):
    from services.api.schemas import MetricBuckets

    base = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
    times = [base + timedelta(minutes=m) for m in range(0, 60, 7)]
    await _insert_rows(settings.database_url, uuid.UUID(device["id"]), times)
    params = {"start": base.isoformat(), "end": (base + timedelta(hours=1)).isoformat(), "bucket": "15m"}
    r = await client.get("/devices/web-1/metrics", params=params, headers=auth(keys["viewer"]))
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["items"]) == 4 and body["items"][0]["samples"] == 3
    assert MetricBuckets.model_validate(body).model_dump(mode="json") == body  # same fields, order and formats
