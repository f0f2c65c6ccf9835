"""The hot path of cached reads: answered before routing with the route's body, no database
session for a known key, one shared key lookup, async dependencies only."""

from __future__ import annotations

import asyncio
import inspect
from typing import Annotated, get_args, get_origin

from fastapi import params

from services.api import deps, hot
from tests.api.conftest import auth, put_cached

READS = ("/devices/web-1/data/system_metrics", "/devices/web-1/metrics")


def _scope(app, path: str, key: str | None, query: bytes = b"") -> dict:
    headers = [(b"authorization", f"Bearer {key}".encode())] if key else []
    return {"type": "http", "method": "GET", "path": path, "query_string": query, "root_path": "",
            "headers": headers, "app": app}


def _comparable(body: dict) -> dict:
    return {k: v for k, v in body.items() if k != "age_seconds"}  # the age grows between two reads


async def test_the_hot_path_answers_with_the_routes_body(app, js, settings, client, keys, device):
    await put_cached(app, js, settings, device, age_s=5)
    h = auth(keys["viewer"])
    for path in READS:
        hot_r = await client.get(path, headers=h)
        assert hot.answer(_scope(app, path, keys["viewer"])) is not None  # a key seen: served before routing
        route_r = await client.get(path, params={"force_refresh": "false"}, headers=h)  # a query: the route
        assert hot_r.status_code == route_r.status_code == 200, (hot_r.text, route_r.text)
        assert dict(hot_r.headers) == {**route_r.headers, "content-length": hot_r.headers["content-length"]}
        assert _comparable(hot_r.json()) == _comparable(route_r.json())


async def test_the_hot_path_leaves_everything_else_to_the_routes(app, js, settings, client, keys, device):
    viewer = keys["viewer"]
    assert hot.answer(_scope(app, READS[0], viewer)) is None  # nothing cached yet: a refresh is needed
    await put_cached(app, js, settings, device, age_s=5)
    assert hot.answer(_scope(app, READS[0], viewer)) is None  # a key this instance has not authenticated yet
    assert (await client.get(READS[0], headers=auth(viewer))).status_code == 200
    assert hot.answer(_scope(app, READS[0], viewer)) is not None
    for path in ("/devices/ghost/data/system_metrics", "/devices/web-1/data/nope", "/devices/web-1/data",
                 "/devices/web-1/metrics/x"):
        assert hot.answer(_scope(app, path, viewer)) is None, path
    assert hot.answer(_scope(app, READS[0], None)) is None
    assert hot.answer(_scope(app, READS[0], viewer + "x")) is None
    await put_cached(app, js, settings, device, age_s=301)  # stale: the route asks for a refresh
    assert hot.answer(_scope(app, READS[0], viewer)) is None
    assert hot.answer(_scope(app, READS[1], viewer)) is None


async def test_hot_reads_are_counted_and_audited_like_the_routes(app, js, settings, client, keys, device):
    await put_cached(app, js, settings, device, age_s=5)
    h = auth(keys["viewer"])
    await client.get(READS[0], headers=h)  # authenticates the key
    await app.state.auditor.drain(5)
    hits, audits = app.state.cache.hits["system_metrics"], app.state.auditor.published
    for path in READS:
        assert (await client.get(path, headers=h)).status_code == 200
    assert app.state.cache.hits["system_metrics"] == hits + 2
    await app.state.auditor.drain(5)
    assert app.state.auditor.published == audits + 2


class _CountingSessions:
    def __init__(self, maker) -> None:
        self.maker, self.opened = maker, 0

    def __call__(self, *args, **kwargs):
        self.opened += 1
        return self.maker(*args, **kwargs)


async def test_a_known_key_opens_no_session_and_concurrent_new_keys_share_one_lookup(
    app, js, settings, client, keys, device
):
    await put_cached(app, js, settings, device, age_s=5)
    sessions = _CountingSessions(app.state.sessionmaker)
    vars(app.state)["sessionmaker"] = sessions  # the lifespan sets the state's attributes directly
    h = auth(keys["operator"])
    paths = [*READS, "/devices/web-1/data/system_metrics?force_refresh=false", "/cache/stats"]
    answers = await asyncio.gather(*(client.get(p, headers=h) for p in paths * 5))
    assert [r.status_code for r in answers] == [200] * len(answers)
    assert sessions.opened == 1  # 20 requests with a key not seen before: one query
    for p in paths:
        assert (await client.get(p, headers=h)).status_code == 200
    assert sessions.opened == 1  # the key is remembered: no session at all


def test_every_dependency_is_async():
    """A plain ``def`` dependency would run in the thread pool, a thread hop per request."""
    aliases = {name: value for name, value in vars(deps).items() if get_origin(value) is Annotated}
    assert {"SessionDep", "ViewerKey", "OperatorKey", "AdminKey", "DeviceDep", "ReaderDep"} <= set(aliases)
    for name, alias in aliases.items():
        (marker,) = [m for m in get_args(alias)[1:] if isinstance(m, params.Depends)]
        call = marker.dependency
        assert inspect.iscoroutinefunction(call) or inspect.isasyncgenfunction(call), name
