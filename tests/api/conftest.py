"""An API app against the real NATS and PostgreSQL of the session, and keys of every role."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest_asyncio

from services.api.keys import ROLES, create_api_key
from services.api.main import create_app


async def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until ``check()`` holds (for state that follows a stream asynchronously)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest_asyncio.fixture
async def app(settings):
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest_asyncio.fixture
async def client(app):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as c:
        yield c


@pytest_asyncio.fixture
async def keys(settings) -> dict[str, str]:
    """One key per role: {"viewer": ..., "operator": ..., "admin": ...}."""
    return {role: (await create_api_key(settings.database_url, role, f"test-{role}"))[0] for role in ROLES}


@pytest_asyncio.fixture
async def device(client, keys) -> dict:
    """A registered device named ``web-1``."""
    r = await client.post("/devices", json={"name": "web-1", "address": "10.0.0.5"}, headers=auth(keys["operator"]))
    assert r.status_code == 201, r.text
    return r.json()
