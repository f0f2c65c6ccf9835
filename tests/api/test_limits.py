"""Bounded work: request bodies, diffs, event streams, page depth and counts, failed refreshes."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx

from services.api import diffs, limits, schemas
from services.api.main import create_app
from services.api.routes.stream import Backlog
from shared import events
from shared.collected import COLLECTED_TYPES
from shared.names import Names
from tests.api.conftest import PAYLOAD, auth
from tests.api.test_audit import _audit
from tests.api.test_config import _snapshot
from tests.util import wait_until

CONF = "/etc/app.conf"


async def test_an_oversized_body_is_413_before_the_key_is_checked_or_the_body_parsed(client, api_settings):
    big = b'{"name": "' + b"x" * api_settings.api_max_body_bytes + b'"}'
    r = await client.post("/devices", content=big, headers={"Content-Type": "application/json"})  # no key
    assert r.status_code == 413 and "larger than" in r.json()["detail"]

    async def chunks():  # no Content-Length: counted as it arrives
        for _ in range(api_settings.api_max_body_bytes // 1024 + 2):
            yield b" " * 1024

    r = await client.post("/keys", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    r = await client.post("/keys", content=b"{}", headers={"Content-Type": "application/json"})  # small: reaches auth
    assert r.status_code == 401


async def _pair(settings, device, old: str, new: str) -> str:
    conn = await asyncpg.connect(settings.database_url)
    try:
        await _snapshot(conn, uuid.UUID(device["id"]), 0, CONF, "app", old, "created")
        return await _snapshot(conn, uuid.UUID(device["id"]), 1, CONF, "app", new)
    finally:
        await conn.close()


def _pathological(n: int) -> tuple[str, str]:
    """Two files whose diff difflib computes in quadratic time (every tenth line changed)."""
    a = [f"line {i} {uuid.uuid4()}\n" for i in range(n)]
    b = [f"changed {i}\n" if i % 10 == 0 else line for i, line in enumerate(a)]
    return "".join(a), "".join(b)


async def test_a_diff_past_the_size_cap_is_422(settings, client, keys, device):
    huge = "x\n" * (diffs.MAX_DIFF_BYTES // 2 + 1)
    sid = await _pair(settings, device, "x\n", huge)
    r = await client.get(f"/devices/web-1/config/snapshots/{sid}/diff", headers=auth(keys["viewer"]))
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["path", "snapshot_id"]
    assert "larger than" in r.json()["message"]


async def test_a_diff_past_its_time_budget_is_422(settings, client, keys, device, monkeypatch):
    monkeypatch.setattr(diffs, "DIFF_BUDGET_S", 0.01)
    sid = await _pair(settings, device, *_pathological(8000))
    r = await client.get(f"/devices/web-1/config/snapshots/{sid}/diff", headers=auth(keys["viewer"]))
    assert r.status_code == 422 and "took longer than" in r.json()["message"]


async def test_other_requests_are_answered_while_a_diff_runs(settings, client, keys, device, monkeypatch):
    monkeypatch.setattr(diffs, "DIFF_BUDGET_S", 3.0)
    sid = await _pair(settings, device, *_pathological(20000))
    diff = asyncio.create_task(client.get(f"/devices/web-1/config/snapshots/{sid}/diff", headers=auth(keys["viewer"])))
    await asyncio.sleep(0.5)  # the diff is computing (it needs its whole budget)
    assert (await client.get("/health")).status_code == 200
    assert not diff.done()  # /health did not wait for the diff
    assert (await diff).status_code == 422


def test_an_event_stream_backlog_holds_a_byte_budget_dropping_the_oldest():
    backlog = Backlog(budget=100)
    for i in range(10):
        backlog.put(b"%02d" % i + b"." * 28)  # 30 bytes each
    assert backlog.size <= 100 and len(backlog.frames) == 3 and backlog.dropped == 7
    backlog.put(b"x" * 101)  # larger than the whole budget: dropped, the rest kept
    assert len(backlog.frames) == 3 and backlog.dropped == 8

    async def drain():
        return [await backlog.get(0.01) for _ in range(5)]

    got = asyncio.run(drain())
    assert got[0] == b": 8 events dropped (client too slow)\n\n"
    assert [g[:2] for g in got[1:4]] == [b"07", b"08", b"09"] and got[4] is None


async def test_event_streams_past_the_cap_are_503(api_settings, keys):
    import uvicorn

    from shared.runtime.embedded import free_port


    app = create_app(api_settings.model_copy(update={"api_sse_max_clients": 1}))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    try:
        await wait_until(lambda: server.started, timeout=30)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
            assert (await c.post("/devices", json={"name": "web-1"}, headers=auth(keys["admin"]))).status_code == 201
            h = auth(keys["viewer"])
            async with c.stream("GET", "/devices/web-1/events", headers=h) as first:
                assert first.status_code == 200
                second = await c.get("/devices/web-1/events", headers=h)
                assert second.status_code == 503 and second.headers["retry-after"] == "5"
            await wait_until(lambda: app.state.sse_clients == 0, timeout=30)
            async with c.stream("GET", "/devices/web-1/events", headers=h) as again:
                assert again.status_code == 200
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


async def test_pages_past_the_offset_cap_are_422(client, keys, device):
    h = auth(keys["viewer"])
    for path, size in (("/audit", 1000), ("/devices", 500), ("/devices/web-1/network/history", 5000),
                       ("/config/changes", 500), ("/alerts", 1000)):
        last = limits.max_page(size)
        assert (last - 1) * size <= limits.MAX_OFFSET
        r = await client.get(path, params={"page": last + 1, "page_size": size}, headers=h)
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "page"], path
        assert (await client.get(path, params={"page": last, "page_size": size}, headers=h)).status_code == 200


async def test_the_total_count_stops_at_a_cap_past_the_page(settings, client, keys, device, monkeypatch):
    monkeypatch.setattr(limits, "COUNT_CAP", 5)
    monkeypatch.setattr(schemas, "COUNT_CAP", 5)
    conn = await asyncpg.connect(settings.database_url)
    try:
        for minute in range(12):
            await _audit(conn, uuid.UUID(device["id"]), minute, "system_metrics", "poll", "success")
    finally:
        await conn.close()
    h = auth(keys["viewer"])
    page = (await client.get("/audit", params={"page_size": 2}, headers=h)).json()
    assert (page["total_count"], page["total_capped"], len(page["items"])) == (5, True, 2)
    page = (await client.get("/audit", params={"page_size": 2, "page": 3}, headers=h)).json()  # offset 4: 4 + 5
    assert (page["total_count"], page["total_capped"]) == (9, True)
    page = (await client.get("/audit", params={"page_size": 4, "page": 3}, headers=h)).json()  # offset 8: all 12
    assert (page["total_count"], page["total_capped"], len(page["items"])) == (12, False, 4)


async def test_a_failed_collection_is_answered_from_a_backing_off_negative_cache(app, nc, settings, client, keys,
                                                                               device):
    names = Names(settings.subject_prefix)
    requests: list = []

    async def failing_collector(msg) -> None:  # answers every refresh with a failed collection
        req = events.decode(msg.data)
        requests.append(req)
        ev = events.new_event(COLLECTED_TYPES["system_metrics"], device_id=req.device_id, device=req.device, service="collector",
                              instance="c1", trigger="api", operation_id=req.operation_id, status="error",
                              error="ssh: connection refused", payload=PAYLOAD)
        await nc.publish(names.collected(req.device, req.data_type), events.encode(ev))

    sub = await nc.subscribe(names.refresh("web-1", "system_metrics"), cb=failing_collector)
    await nc.flush()
    h = auth(keys["viewer"])
    try:
        answers = [await client.get("/devices/web-1/data/system_metrics", headers=h) for _ in range(5)]
        assert [r.status_code for r in answers] == [502] * 5
        assert {r.json()["error"] for r in answers} == {"ssh: connection refused"}
        assert len(requests) == 1 and app.state.refresher.failures_served == 4  # one collection, not five
        failure = app.state.refresher.failed[Names.cache_key("web-1", "system_metrics")]
        failure.until = 0  # the hold has passed: the next read asks again, and the next hold is twice as long
        assert (await client.get("/devices/web-1/data/system_metrics", headers=h)).status_code == 502
        assert len(requests) == 2
        again = app.state.refresher.failed[Names.cache_key("web-1", "system_metrics")]
        assert again.failures == 2
        hold = again.until - asyncio.get_running_loop().time()
        assert settings_hold(app) < hold <= 2 * settings_hold(app)
    finally:
        await sub.unsubscribe()


def settings_hold(app) -> float:
    return app.state.settings.api_failed_refresh_cache_s


async def test_a_timed_out_refresh_is_answered_from_the_negative_cache(app, client, keys, device):
    h = auth(keys["operator"])
    first = await client.get("/devices/web-1/data/system_metrics", params={"force_refresh": "true"}, headers=h)
    second = await client.get("/devices/web-1/data/system_metrics", params={"force_refresh": "true"}, headers=h)
    assert (first.status_code, second.status_code) == (504, 504)
    assert first.json()["operation_id"] == second.json()["operation_id"]
    assert app.state.refresher.requested == 1
