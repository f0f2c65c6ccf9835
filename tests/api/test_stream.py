"""Server-Sent Events of one device's events, over a real HTTP connection to uvicorn."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx

from shared import events
from shared.collected import COLLECTED_TYPES
from shared.names import Names
from shared.runtime.publish import publish_event
from tests.api.conftest import PAYLOAD, auth
from tests.util import wait_until


async def _next_event(lines) -> tuple[str, dict]:
    """The next ``event:``/``data:`` pair, skipping comments."""
    kind = None
    async for line in lines:
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: ") and kind is not None:
            return kind, json.loads(line[6:])
    raise AssertionError("stream ended")


async def test_collected_and_device_events_of_one_device(live, js, settings, keys):
    app, base = live
    names = Names(settings.subject_prefix)
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        r = await client.post("/devices", json={"name": "web-1"}, headers=auth(keys["admin"]))
        device_id = uuid.UUID(r.json()["id"])
        idle_subs = len(app.state.nc._subs)  # nats-py keeps no public count
        async with client.stream("GET", "/devices/web-1/events", params={"kind": "collected,device"},
                                 headers=auth(keys["viewer"])) as resp:
            assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
            lines = resp.aiter_lines()
            assert await anext(lines) == ": connected"
            other = events.new_event(COLLECTED_TYPES["system_metrics"], device_id=uuid.uuid4(), device="web-2",
                                     service="collector", instance="c", trigger="poll", payload=PAYLOAD)
            mine = events.new_event(COLLECTED_TYPES["system_metrics"], device_id=device_id, device="web-1",
                                    service="collector", instance="c", trigger="poll", payload=PAYLOAD)
            await publish_event(js, names.collected("web-2", "system_metrics"), other)
            await publish_event(js, names.collected("web-1", "system_metrics"), mine)
            kind, data = await asyncio.wait_for(_next_event(lines), 30)
            assert kind == "collected" and data["event_id"] == str(mine.event_id)
            r = await client.patch("/devices/web-1", json={"port": 2222}, headers=auth(keys["admin"]))
            assert r.status_code == 200
            kind, data = await asyncio.wait_for(_next_event(lines), 30)
            assert kind == "device" and data["action"] == "updated" and data["spec"]["port"] == 2222

        # the client went away: the stream ends and its subscriptions are removed
        await wait_until(lambda: len(app.state.nc._subs) == idle_subs, timeout=30)


async def test_unknown_kind_is_422_and_unknown_device_404(live, keys):
    _, base = live
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        r = await client.get("/devices/ghost/events", headers=auth(keys["viewer"]))
        assert r.status_code == 404
        await client.post("/devices", json={"name": "web-1"}, headers=auth(keys["admin"]))
        r = await client.get("/devices/web-1/events", params={"kind": "collected,gossip"}, headers=auth(keys["viewer"]))
        assert r.status_code == 422 and "gossip" in r.json()["message"]
        assert (await client.get("/devices/web-1/events")).status_code == 401
