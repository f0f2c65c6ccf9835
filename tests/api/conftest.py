"""An API app against the real NATS and PostgreSQL of the session, and keys of every role."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timezone

import httpx
import pytest
import pytest_asyncio
import uvicorn

from services.api.keys import ROLES, create_api_key
from services.api.main import create_app
from services.api.settings import ApiSettings
from shared import events
from shared.collected import COLLECTED_TYPES
from shared.datatypes.system_metrics.payload import Filesystem, SystemMetrics
from shared.names import Names
from shared.runtime.embedded import free_port
from tests.util import wait_until

REFRESH_TIMEOUT_S = 1.5  # no collector runs in most API tests: a refresh times out after this

PAYLOAD = SystemMetrics(
    cpu_percent=12.5, cpu_count=4, memory_total_bytes=8 << 30, memory_available_bytes=6 << 30,
    memory_used_bytes=2 << 30, memory_percent=25.0, load_1=0.5, load_5=0.4, load_15=0.3, uptime_seconds=3600.0,
    filesystems=[Filesystem(device="/dev/sda1", mount="/", fstype="ext4", total_bytes=100, used_bytes=40,
                            available_bytes=60, used_percent=40.0)],
)


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def put_cached(app, js, settings, device: dict, age_s: float = 5.0, payload=PAYLOAD, **fields):
    """Put a system_metrics collection of ``device`` into the KV cache and wait for the mirror."""
    from datetime import timedelta

    ev = events.new_event(
        COLLECTED_TYPES["system_metrics"], device_id=uuid.UUID(device["id"]), device=device["name"], service="collector",
        instance="c1", trigger="poll", payload=payload,
        occurred_at=datetime.now(timezone.utc) - timedelta(seconds=age_s), **fields,
    )
    return await put_event(app, js, settings, ev)


async def put_event(app, js, settings, ev):
    """Put any collected event into the KV cache and wait for the mirror."""
    key = Names.cache_key(ev.device, ev.data_type)
    await (await js.key_value(Names(settings.subject_prefix).cache_bucket)).put(key, events.encode(ev))
    await wait_until(lambda: getattr(app.state.cache.get(key), "event_id", None) == ev.event_id)
    return ev


async def project(database_url: str, *evs) -> None:
    """Write events as the writer does: its projection and its sink."""
    import asyncpg

    from services.writer.projection import rows
    from services.writer.sink import write

    conn = await asyncpg.connect(database_url)
    try:
        for ev in evs:
            await write(conn, rows(ev))
    finally:
        await conn.close()


@pytest.fixture
def api_settings(settings) -> ApiSettings:
    return ApiSettings(**settings.model_dump(), api_refresh_timeout_s=REFRESH_TIMEOUT_S, api_sse_heartbeat_s=0.5)


@pytest_asyncio.fixture
async def app(api_settings):
    app = create_app(api_settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest_asyncio.fixture
async def client(app):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as c:
        yield c


@pytest_asyncio.fixture
async def live(api_settings):
    """The API served by a real uvicorn on a free port (for streaming and external clients)."""
    app = create_app(api_settings)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    await wait_until(lambda: server.started, timeout=30)
    yield app, f"http://127.0.0.1:{port}"
    server.should_exit = True
    await asyncio.wait_for(task, 30)


@pytest_asyncio.fixture
async def keys(settings) -> dict[str, str]:
    """One key per role: {"viewer": ..., "operator": ..., "admin": ...}."""
    return {role: (await create_api_key(settings.database_url, role, f"test-{role}"))[0] for role in ROLES}


@pytest_asyncio.fixture
async def device(client, keys) -> dict:
    """A registered device named ``web-1``."""
    r = await client.post("/devices", json={"name": "web-1", "address": "10.0.0.5"}, headers=auth(keys["admin"]))
    assert r.status_code == 201, r.text
    return r.json()
