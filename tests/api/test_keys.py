"""API keys managed through the API: created once, listed without secrets, revoked."""

from __future__ import annotations

import uuid

from tests.api.conftest import auth


async def test_create_list_use_and_revoke(client, keys):
    admin = auth(keys["admin"])
    r = await client.post("/keys", json={"name": "dashboard", "role": "viewer", "expires_in_days": 30}, headers=admin)
    assert r.status_code == 201, r.text
    created = r.json()
    key = created["key"]
    assert key.startswith("iw_") and created["prefix"] == key[3:11] and created["expires_at"] is not None

    assert (await client.get("/devices", headers=auth(key))).status_code == 200
    listed = (await client.get("/keys", headers=admin)).json()
    mine = next(k for k in listed if k["id"] == created["id"])
    assert mine["last_used_at"] is not None and mine["revoked_at"] is None
    assert all("key" not in k and "key_hash" not in k for k in listed)
    assert not any(key in str(v) for k in listed for v in k.values())

    assert (await client.delete(f"/keys/{created['id']}", headers=admin)).status_code == 204
    assert (await client.get("/devices", headers=auth(key))).status_code == 401
    assert (await client.delete(f"/keys/{created['id']}", headers=admin)).status_code == 204  # idempotent
    revoked = next(k for k in (await client.get("/keys", headers=admin)).json() if k["id"] == created["id"])
    assert revoked["revoked_at"] is not None


async def test_invalid_key_requests(client, keys):
    admin = auth(keys["admin"])
    r = await client.post("/keys", json={"name": "x", "role": "root"}, headers=admin)
    assert r.status_code == 422 and r.json()["message"].startswith("role:")
    r = await client.post("/keys", json={"name": "bad\nname", "role": "viewer"}, headers=admin)
    assert r.status_code == 422 and r.json()["message"].startswith("name:")
    assert (await client.delete(f"/keys/{uuid.uuid4()}", headers=admin)).status_code == 404
    assert (await client.delete("/keys/not-a-uuid", headers=admin)).status_code == 422
