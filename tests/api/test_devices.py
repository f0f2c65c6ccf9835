"""Registering, reading, listing and removing devices through the API."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import asyncpg

from shared.names import Names
from shared.runtime import devices
from tests.api.conftest import auth
from tests.util import wait_until


async def test_create_then_get_by_name_and_by_id(client, keys, js, settings, device):
    assert device["name"] == "web-1" and device["address"] == "10.0.0.5" and device["port"] == 22
    assert device["status"] == "enabled" and device["last_collection_status"] == {}
    h = auth(keys["viewer"])
    by_name = (await client.get("/devices/web-1", headers=h)).json()
    by_id = (await client.get(f"/devices/{device['id']}", headers=h)).json()
    assert by_name == by_id == device
    spec = await devices.current(js, Names(settings.subject_prefix), "web-1")
    assert spec is not None and str(spec.id) == device["id"]


async def test_unknown_device_is_404(client, keys):
    h = auth(keys["viewer"])
    assert (await client.get("/devices/nope", headers=h)).status_code == 404
    assert (await client.get(f"/devices/{uuid.uuid4()}", headers=h)).status_code == 404


async def test_duplicate_name_is_409(client, keys, device):
    r = await client.post("/devices", json={"name": "web-1"}, headers=auth(keys["admin"]))
    assert r.status_code == 409
    assert "already exists" in r.json()["detail"]


async def test_invalid_name_is_422(client, keys):
    for name in ("bad.name", "-lead", "has space", "x" * 64, ""):
        r = await client.post("/devices", json={"name": name}, headers=auth(keys["admin"]))
        assert r.status_code == 422, name


async def test_list_paginates_and_filters(client, keys):
    op = auth(keys["admin"])
    for i in range(5):
        body = {"name": f"node-{i}", "device_type": "server" if i % 2 else "nas", "enabled": i != 4}
        assert (await client.post("/devices", json=body, headers=op)).status_code == 201
    h = auth(keys["viewer"])
    page = (await client.get("/devices", params={"page": 2, "page_size": 2}, headers=h)).json()
    assert [d["name"] for d in page["items"]] == ["node-2", "node-3"]
    assert (page["total_count"], page["page"], page["page_size"], page["total_pages"]) == (5, 2, 2, 3)
    servers = (await client.get("/devices", params={"device_type": "server"}, headers=h)).json()
    assert [d["name"] for d in servers["items"]] == ["node-1", "node-3"]
    assert (await client.get("/devices", params={"name": "DE-3"}, headers=h)).json()["total_count"] == 1
    disabled = (await client.get("/devices", params={"status": "disabled"}, headers=h)).json()
    assert [d["name"] for d in disabled["items"]] == ["node-4"]
    assert (await client.get("/devices", params={"page_size": 501}, headers=h)).status_code == 422


async def test_delete_removes_and_allows_reuse_of_the_name(app, client, keys, device):
    op = auth(keys["admin"])
    assert (await client.delete(f"/devices/{device['id']}", headers=op)).status_code == 204
    assert (await client.get("/devices/web-1", headers=op)).status_code == 404
    assert (await client.delete("/devices/web-1", headers=op)).status_code == 404
    again = await client.post("/devices", json={"name": "web-1"}, headers=op)
    assert again.status_code == 201 and again.json()["id"] != device["id"]
    await wait_until(lambda: app.state.registry.by_name.get("web-1") is not None
                     and str(app.state.registry.by_name["web-1"].id) == again.json()["id"])


async def test_collection_status_comes_from_the_audit_table(settings, client, keys, device):
    now = datetime.now(timezone.utc)
    rows = [  # (age, data_type, method, status)
        (30, "system_metrics", "ssh", "success"),
        (20, "system_metrics", "ssh", "error"),
        (10, "system_metrics", "cache", "success"),  # a cache hit is not a collection
    ]
    conn = await asyncpg.connect(settings.database_url)
    try:
        for age, data_type, method, status in rows:
            await conn.execute(
                "INSERT INTO data_collection_audit (time, event_id, device_id, operation_id, data_type, "
                "collection_method, trigger, cache_hit, status, force_refresh, ssh_command_count, records_created, "
                "records_updated) VALUES ($1, $2, $3, $2, $4, $5, 'poll', $6, $7, false, 0, 0, 0)",
                now - timedelta(seconds=age), uuid.uuid4(), uuid.UUID(device["id"]), data_type, method,
                method == "cache", status,
            )
    finally:
        await conn.close()
    d = (await client.get("/devices/web-1", headers=auth(keys["viewer"]))).json()
    assert d["last_collection_status"] == {"system_metrics": "error"}
    ok = datetime.fromisoformat(d["last_successful_collection"]["system_metrics"])
    assert abs((ok - (now - timedelta(seconds=30))).total_seconds()) < 0.01
    listed = (await client.get("/devices", headers=auth(keys["viewer"]))).json()["items"]
    assert listed[0]["last_collection_status"] == {"system_metrics": "error"}


async def test_update_changes_fields_and_publishes(client, keys, js, settings, device):
    h = auth(keys["admin"])
    r = await client.patch("/devices/web-1", json={"address": "10.0.0.9", "enabled": False, "description": None},
                           headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["address"], body["enabled"], body["status"], body["port"]) == ("10.0.0.9", False, "disabled", 22)
    assert body["id"] == device["id"] and body["name"] == "web-1"
    spec = await devices.current(js, Names(settings.subject_prefix), "web-1")
    assert spec is not None and spec.address == "10.0.0.9" and not spec.enabled
    assert (await client.get("/devices/web-1", headers=h)).json()["address"] == "10.0.0.9"


async def test_update_refuses_a_new_name_nulls_and_unknown_fields(client, keys, device):
    h = auth(keys["admin"])
    r = await client.patch("/devices/web-1", json={"name": "web-2"}, headers=h)
    assert r.status_code == 409 and "immutable" in r.json()["detail"]
    assert (await client.patch("/devices/web-1", json={"name": "web-1", "port": 2222}, headers=h)).status_code == 200
    r = await client.patch("/devices/web-1", json={"port": None}, headers=h)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "port"]
    r = await client.patch("/devices/web-1", json={"colour": "red"}, headers=h)
    assert r.status_code == 422 and "colour" in r.json()["message"]
    r = await client.patch("/devices/web-1", json={"port": 70000}, headers=h)
    assert r.status_code == 422 and r.json()["message"].startswith("port:")
    assert (await client.patch("/devices/ghost", json={"port": 23}, headers=h)).status_code == 404
