"""Liveness and readiness need no key; readiness names the part that is down."""

from __future__ import annotations

import httpx

from services.api.main import create_app
from shared.runtime.embedded import free_port


async def test_health_needs_no_key(client):
    r = await client.get("/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


async def test_ready_with_nats_and_database_up(client):
    r = await client.get("/ready")
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "ready", "nats": "ok", "database": "ok"}


async def _get_without_database(settings, path: str, **kw) -> httpx.Response:
    """GET ``path`` from an app whose database is unreachable."""
    down = settings.model_copy(update={"database_url": f"postgresql://postgres@127.0.0.1:{free_port()}/none"})
    app = create_app(down)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as c,
    ):
        return await c.get(path, **kw)


async def test_ready_is_503_when_the_database_is_down(settings):
    r = await _get_without_database(settings, "/ready")
    assert r.status_code == 503
    body = r.json()
    assert body["nats"] == "ok"
    assert body["database"].startswith("unavailable")


async def test_requests_are_503_while_the_database_is_down(settings):
    r = await _get_without_database(settings, "/devices", headers={"X-API-Key": "iw_abcdefgh_secret"})
    assert r.status_code == 503
    assert r.json() == {"detail": "database unavailable"}
