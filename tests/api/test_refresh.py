"""Refreshes through a real collector over the test SSH server, shared in-flight refreshes, timeouts."""

from __future__ import annotations

import asyncio
import shutil
from contextlib import asynccontextmanager
from datetime import datetime, timezone

import httpx
import pytest
from nats.errors import NoRespondersError, TimeoutError as NatsTimeoutError

from services.api.main import create_app
from services.collector import service as collector_service
from shared import events
from shared.events import RefreshRequested
from shared.names import Names
from shared.runtime.embedded import free_port
from shared.runtime.nats_conn import connect
from tests.api.conftest import auth
from tests.util import wait_until

pytestmark = pytest.mark.ssh


@asynccontextmanager
async def collector(settings, ssh_server, tmp_path):
    """The real collector service, in-process, trusting the test SSH server's host key."""
    known_hosts = tmp_path / "known_hosts"
    shutil.copy(ssh_server.known_hosts, known_hosts)
    s = settings.model_copy(update={"ssh_client_keys": [ssh_server.client_key], "ssh_known_hosts": known_hosts})
    stop = asyncio.Event()
    task = asyncio.create_task(collector_service.run(s, stop))
    try:
        await _serving(s)
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def _serving(settings) -> None:
    """Wait until a collector answers refresh requests (a request for an unknown device gets a refusal)."""
    names = Names(settings.subject_prefix)
    probe = events.new_event(RefreshRequested, device="probe", service="test", instance="test", trigger="api",
                             data_type="system_metrics")
    nc = await connect(settings, "test-probe")
    try:
        async def answered() -> bool:
            try:
                await nc.request(names.refresh("probe", "system_metrics"), events.encode(probe), timeout=1)
                return True
            except (NoRespondersError, NatsTimeoutError):
                return False

        await wait_until(answered, timeout=60, what="collector serving refresh requests")
    finally:
        await nc.close()


@asynccontextmanager
async def api(api_settings, timeout_s: float):
    app = create_app(api_settings.model_copy(update={"api_refresh_timeout_s": timeout_s}))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as c,
    ):
        yield app, c


async def test_force_refresh_collects_over_ssh(api_settings, keys, ssh_server, tmp_path):
    async with api(api_settings, 30) as (app, client), collector(api_settings, ssh_server, tmp_path):
        r = await client.post("/devices", headers=auth(keys["admin"]), json={
            "name": "sshbox", "address": ssh_server.host, "port": ssh_server.port, "username": ssh_server.username})
        assert r.status_code == 201, r.text
        key = Names.cache_key("sshbox", "system_metrics")
        await wait_until(lambda: app.state.cache.get(key) is not None, timeout=60)  # the first poll

        op = auth(keys["operator"])
        sent = datetime.now(timezone.utc)
        r = await client.get("/devices/sshbox/metrics", params={"force_refresh": "true"}, headers=op)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["source"] == "refresh" and datetime.fromisoformat(body["time"]) > sent
        assert body["cpu_count"] >= 1 and body["memory_total_bytes"] > 0

        sent = datetime.now(timezone.utc)
        r = await client.get("/devices/sshbox/data/system_metrics", params={"force_refresh": "true"}, headers=op)
        assert r.status_code == 200, r.text
        data = r.json()
        assert data["source"] == "refresh" and datetime.fromisoformat(data["occurred_at"]) > sent
        assert data["fresh"] and data["status"] in ("success", "partial") and data["payload"]["cpu_count"] >= 1

        # the refreshed value reaches the cache; a plain read is then a hit
        await wait_until(lambda: str(getattr(app.state.cache.get(key), "event_id", "")) == data["event_id"])
        r = await client.get("/devices/sshbox/data/system_metrics", headers=auth(keys["viewer"]))
        assert r.json()["source"] == "cache" and r.json()["event_id"] == data["event_id"]


async def test_failed_collection_is_502_with_its_error(api_settings, nc, keys, ssh_server, tmp_path):
    polled = asyncio.Event()

    async def on_collected(msg) -> None:
        polled.set()

    sub = await nc.subscribe(Names(api_settings.subject_prefix).collected("closed", "system_metrics"),
                             cb=on_collected)
    async with api(api_settings, 30) as (_, client), collector(api_settings, ssh_server, tmp_path):
        r = await client.post("/devices", headers=auth(keys["admin"]), json={
            "name": "closed", "address": "127.0.0.1", "port": free_port(), "username": ssh_server.username})
        assert r.status_code == 201
        await asyncio.wait_for(polled.wait(), 60)  # the collector knows the device: its first poll failed
        await sub.unsubscribe()
        r = await client.get("/devices/closed/data/system_metrics", params={"force_refresh": "true"},
                             headers=auth(keys["operator"]))
        assert r.status_code == 502, r.text
        body = r.json()
        assert body["status"] == "error" and body["error"] and body["operation_id"]


async def test_refresh_refused_by_the_collector_is_502(api_settings, keys, ssh_server, tmp_path):
    async with api(api_settings, 30) as (_, client), collector(api_settings, ssh_server, tmp_path):
        r = await client.post("/devices", headers=auth(keys["admin"]), json={"name": "off", "enabled": False})
        assert r.status_code == 201
        r = await client.get("/devices/off/data/system_metrics", headers=auth(keys["viewer"]))
        assert r.status_code == 502, r.text
        assert "disabled" in r.json()["detail"] and r.json()["operation_id"]


async def test_no_collector_is_504_with_the_operation_id(client, keys, device):
    r = await client.get("/devices/web-1/data/system_metrics", params={"force_refresh": "true"},
                         headers=auth(keys["operator"]))
    assert r.status_code == 504
    assert r.json()["operation_id"] and "timed out" in r.json()["detail"]


async def test_concurrent_refreshes_share_one_request(app, nc, settings, client, keys, device):
    names = Names(settings.subject_prefix)
    seen: list[RefreshRequested] = []

    async def on_msg(msg) -> None:
        seen.append(events.decode(msg.data))

    sub = await nc.subscribe(names.refresh("web-1", "system_metrics"), cb=on_msg)
    await nc.flush()
    h = auth(keys["operator"])
    paths = ["/devices/web-1/metrics", "/devices/web-1/data/system_metrics"] * 5
    responses = await asyncio.gather(*(client.get(p, params={"force_refresh": "true"}, headers=h) for p in paths))
    await nc.flush()
    await sub.unsubscribe()
    assert [r.status_code for r in responses] == [504] * 10
    assert len({r.json()["operation_id"] for r in responses}) == 1
    assert len(seen) == 1 and str(seen[0].operation_id) == responses[0].json()["operation_id"]
    assert seen[0].data_type == "system_metrics" and str(seen[0].device_id) == device["id"]
    assert app.state.refresher.in_flight == {}
