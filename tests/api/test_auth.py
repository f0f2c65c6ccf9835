"""API keys: required everywhere but /health and /ready, stored hashed, roles enforced."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

import asyncpg
import pytest

from services.api.keys import create_api_key, parse_prefix
from tests.api.conftest import auth

PUBLIC = {"/health", "/ready"}


def _api_routes(app) -> list[tuple[str, str]]:
    """Every (method, path) the OpenAPI document lists, health checks aside."""
    return [
        (method.upper(), path.replace("{device}", "web-1"))
        for path, ops in app.openapi()["paths"].items() if path not in PUBLIC for method in ops
    ]


async def test_every_route_but_health_needs_a_key(app, client):
    routes = _api_routes(app)
    assert ("POST", "/devices") in routes and ("GET", "/devices/web-1/metrics") in routes
    for method, path in routes:
        r = await client.request(method, path, json={"name": "x"} if method == "POST" else None)
        assert r.status_code == 401, (method, path, r.status_code)
        assert r.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("bad", ["nonsense", "iw_abcdefgh_wrongsecret", "Bearer", ""])
async def test_invalid_keys_are_refused(client, keys, bad):
    r = await client.get("/devices", headers=auth(bad))
    assert r.status_code == 401


async def test_right_prefix_wrong_secret_is_refused(client, keys):
    key = keys["admin"]
    r = await client.get("/devices", headers=auth(key[:-4] + "AAAA"))
    assert r.status_code == 401


async def test_both_headers_are_accepted(client, keys):
    assert (await client.get("/devices", headers=auth(keys["viewer"]))).status_code == 200
    assert (await client.get("/devices", headers={"X-API-Key": keys["viewer"]})).status_code == 200


async def test_only_admins_change_devices(client, keys, device):
    for role in ("viewer", "operator"):
        r = await client.post("/devices", json={"name": "db-1"}, headers=auth(keys[role]))
        assert r.status_code == 403 and r.json()["detail"] == "this needs the admin role or higher"
        assert (await client.delete("/devices/web-1", headers=auth(keys[role]))).status_code == 403
    r = await client.post("/devices", json={"name": "db-1"}, headers=auth(keys["admin"]))
    assert r.status_code == 201


async def test_errors_are_json_with_a_message(client, keys):
    r = await client.get("/devices")
    assert r.status_code == 401 and r.json() == {"detail": "missing API key"}
    r = await client.get("/devices", headers=auth("iw_abcdefgh_nope"))
    assert r.status_code == 401 and r.json() == {"detail": "a valid API key is required"}
    r = await client.get("/devices", params={"page": 0}, headers=auth(keys["viewer"]))
    assert r.status_code == 422
    assert r.json()["message"] == "page: Input should be greater than or equal to 1"
    assert r.json()["detail"][0]["loc"] == ["query", "page"]


async def test_docs_and_openapi_are_public_and_document_the_key(client):
    assert (await client.get("/docs")).status_code == 200
    spec = (await client.get("/openapi.json")).json()
    schemes = spec["components"]["securitySchemes"]
    assert {s["type"] for s in schemes.values()} == {"http", "apiKey"}
    assert spec["paths"]["/devices"]["get"]["security"]


async def test_key_is_stored_hashed_with_a_visible_prefix(settings, client):
    key, key_id = await create_api_key(settings.database_url, "viewer", "ci")
    assert key.startswith("iw_") and parse_prefix(key) == key[3:11]
    conn = await asyncpg.connect(settings.database_url)
    try:
        row = await conn.fetchrow("SELECT * FROM api_keys WHERE id = $1", key_id)
        assert row["prefix"] == key[3:11]
        assert row["key_hash"] == hashlib.sha256(key.encode()).hexdigest()
        assert row["role"] == "viewer" and row["last_used_at"] is None
        assert not any(key in str(v) or key.split("_", 2)[2] in str(v) for v in row.values())

        assert (await client.get("/devices", headers=auth(key))).status_code == 200
        assert await conn.fetchval("SELECT last_used_at FROM api_keys WHERE id = $1", key_id) is not None
    finally:
        await conn.close()


async def test_revoked_and_expired_keys_are_refused(settings, client):
    revoked, revoked_id = await create_api_key(settings.database_url, "admin", "old")
    expired, expired_id = await create_api_key(settings.database_url, "admin", "temp")
    conn = await asyncpg.connect(settings.database_url)
    try:
        now = datetime.now(timezone.utc)
        await conn.execute("UPDATE api_keys SET revoked_at = $1 WHERE id = $2", now, revoked_id)
        await conn.execute("UPDATE api_keys SET expires_at = $1 WHERE id = $2", now - timedelta(seconds=1), expired_id)
    finally:
        await conn.close()
    assert (await client.get("/devices", headers=auth(revoked))).status_code == 401
    assert (await client.get("/devices", headers=auth(expired))).status_code == 401


async def test_unknown_role_is_rejected(settings):
    with pytest.raises(ValueError):
        await create_api_key(settings.database_url, "root", "nope")
