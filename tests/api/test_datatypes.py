"""GET /datatypes describes the registry, and every registered type's generic reads exist as it declares them."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

from shared.datatypes import REGISTRY
from tests.api.conftest import auth, project
from tests.factories import inventory_event, systemd_event

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)


async def test_datatypes_lists_every_registered_type_with_its_paths_and_columns(client, keys):
    assert (await client.get("/datatypes")).status_code == 401
    r = await client.get("/datatypes", headers=auth(keys["viewer"]))
    assert r.status_code == 200, r.text
    types = {t["name"]: t for t in r.json()}
    assert list(types) == list(REGISTRY)
    zfs = types["zfs"]
    assert (zfs["path"], zfs["latest"], zfs["history"], zfs["key"], zfs["table"]) == (
        "zfs", True, True, "pool", "zfs_pools")
    columns = {c["name"]: c for c in zfs["columns"]}
    assert [c["name"] for c in zfs["columns"][:4]] == ["time", "device_id", "event_id", "pool"]
    assert (columns["pool"]["type"], columns["pool"]["nullable"]) == ("text", False)
    assert (columns["vdevs"]["type"], columns["vdevs"]["nullable"]) == ("jsonb", True)
    assert (types["system_metrics"]["latest"], types["system_metrics"]["history"]) == (False, False)
    assert types["inventory"]["key"] is None and types["network"]["key"] == "interface"


async def test_the_document_has_the_reads_each_type_declares(client):
    doc = (await client.get("/openapi.json")).json()
    paths = doc["paths"]
    for t in REGISTRY.values():
        latest, history = f"/devices/{{device}}/{t.api.path}", f"/devices/{{device}}/{t.api.path}/history"
        if t.api.latest:
            assert paths[latest]["get"]["tags"] == [t.api.path]
        if t.api.history:
            params = {p["name"] for p in paths[history]["get"]["parameters"]}
            assert params == {"device", "start", "end", "page", "page_size", *([t.api.key] if t.api.key else [])}
    assert "/devices/{device}/metrics/history" not in paths  # system_metrics' reads are its own
    assert doc["paths"]["/datatypes"]["get"]["responses"]["200"]["content"]["application/json"]["schema"][
        "items"]["$ref"].endswith("/DataTypeInfo")


async def test_a_generic_history_without_a_key(settings, client, keys, device):
    dev = uuid.UUID(device["id"])
    await project(settings.database_url, *(inventory_event(dev, "web-1", at=T0 + timedelta(minutes=m)) for m in range(3)),
                  systemd_event(dev, "web-1", at=T0))
    h = auth(keys["viewer"])
    r = await client.get("/devices/web-1/inventory/history", params={"start": (T0 + timedelta(minutes=1)).isoformat(),
                                                                     "page_size": 1}, headers=h)
    assert r.status_code == 200, r.text
    page = r.json()
    assert (page["total_count"], page["total_pages"], len(page["items"])) == (2, 2, 1)
    row = page["items"][0]
    assert datetime.fromisoformat(row["time"]) == T0 + timedelta(minutes=1)
    assert row["device_id"] == device["id"] and row["kernel"] == "6.1.0-18-amd64"
    services = (await client.get("/devices/web-1/services/history", headers=h)).json()
    assert [row["units_failed"] for row in services["items"]] == [1]
    r = await client.get("/devices/web-1/services/history", params={"unit": "x"}, headers=h)  # no key to filter on
    assert r.status_code == 422 and r.json()["message"].startswith("unit:")
    assert (await client.get("/devices/ghost/inventory/history", headers=h)).status_code == 404
