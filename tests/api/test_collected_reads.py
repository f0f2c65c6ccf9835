"""The data-type reads: latest values through the Reader, and history written by the writer's projection."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timedelta, timezone

import msgspec
import pytest

from shared.datatypes.inventory.payload import Change, Drift
from tests.api.conftest import auth, project, put_event
from tests.factories import (
    containers_event,
    drive_health_event,
    inventory_event,
    network_event,
    systemd_event,
    zfs_event,
)
from tests.util import wait_until

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)
LATEST = {  # route -> (builder, a check of the served payload)
    "containers": (containers_event, lambda p: p["containers"][1]["name"] == "app-1"),
    "drives": (drive_health_event, lambda p: p["drives"][0]["temperature_celsius"] == 35),
    "network": (network_event, lambda p: [i["name"] for i in p["interfaces"]] == ["lo", "eth0"]),
    "zfs": (zfs_event, lambda p: p["pools"][0]["vdevs"][2]["name"] == "sdb"),
    "services": (systemd_event, lambda p: p["failed"] == ["backup.service"]),
    "inventory": (inventory_event, lambda p: p["kernel"] == "6.1.0-18-amd64"),
}


def _at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def _window(start: float, end: float) -> dict[str, str]:
    return {"start": _at(start).isoformat(), "end": _at(end).isoformat()}


@pytest.mark.parametrize("route", LATEST)
async def test_latest_from_the_fresh_cache(app, js, settings, client, keys, device, route):
    build, check = LATEST[route]
    ev = await put_event(app, js, settings, build(uuid.UUID(device["id"]), "web-1",
                                                  at=datetime.now(timezone.utc) - timedelta(seconds=2)))
    published = app.state.auditor.published
    r = await client.get(f"/devices/web-1/{route}", headers=auth(keys["viewer"]))
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["source"], body["fresh"], body["data_type"]) == ("cache", True, ev.data_type)
    assert body["event_id"] == str(ev.event_id) and check(body["payload"])
    await wait_until(lambda: app.state.auditor.published == published + 1)  # audited like /data/{type}
    r = await client.get(f"/devices/web-1/{route}", params={"force_refresh": "true"}, headers=auth(keys["viewer"]))
    assert r.status_code == 403


async def test_latest_without_a_fresh_value_asks_for_a_refresh(client, keys, device):
    r = await client.get("/devices/web-1/inventory", headers=auth(keys["viewer"]))  # no collector runs
    assert r.status_code == 504 and uuid.UUID(r.json()["operation_id"])


@pytest.mark.parametrize("path", [*(f"/devices/ghost/{r}" for r in LATEST), "/devices/ghost/containers/x/history",
                                  "/devices/ghost/drives/sda/history", "/devices/ghost/network/history",
                                  "/devices/ghost/zfs/history", "/devices/ghost/inventory/drift"])
async def test_unknown_device_is_404(client, keys, path):
    assert (await client.get(path, headers=auth(keys["viewer"]))).status_code == 404


async def test_container_history_by_id_short_id_or_name(settings, client, keys, device):
    dev = uuid.UUID(device["id"])
    ids = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(3)]  # distinct like docker's

    def snapshot(minutes: int):
        ev = containers_event(dev, "web-1", at=_at(minutes), count=3)
        cs = [msgspec.structs.replace(c, id=ids[i]) for i, c in enumerate(ev.payload.containers)]
        return msgspec.structs.replace(ev, payload=msgspec.structs.replace(ev.payload, containers=cs))

    snapshots = [snapshot(m) for m in range(4)]
    await project(settings.database_url, *snapshots)
    h = auth(keys["viewer"])
    full_id = ids[1]
    for ref in ("app-1", full_id, full_id[:12]):
        r = await client.get(f"/devices/web-1/containers/{ref}/history", headers=h)
        assert r.status_code == 200, r.text
        page = r.json()
        assert page["total_count"] == 4 and {row["container_id"] for row in page["items"]} == {full_id}
        assert [row["time"] for row in page["items"]] == sorted(row["time"] for row in page["items"])  # newest last
    row = page["items"][0]
    assert (row["name"], row["state"], row["network_io"], row["removed"]) == (
        "app-1", "running", {"rx_bytes": 1000, "tx_bytes": 500}, False)
    assert row["ports"][0]["host_port"] == "8001" and row["event_id"] == str(snapshots[0].event_id)
    r = await client.get("/devices/web-1/containers/app-1/history", params={**_window(1, 3), "page_size": 1,
                                                                            "page": 2}, headers=h)
    page = r.json()
    assert (page["total_count"], page["total_pages"]) == (2, 2)
    assert datetime.fromisoformat(page["items"][0]["time"]) == _at(2)
    empty = await client.get("/devices/web-1/containers/app-1/history", params=_window(10, 20), headers=h)
    assert empty.status_code == 200 and empty.json()["items"] == []
    for ref in ("nope", full_id[:4]):  # unknown, or a prefix too short to match
        r = await client.get(f"/devices/web-1/containers/{ref}/history", headers=h)
        assert r.status_code == 404 and "not found" in r.json()["detail"]


async def test_drive_history_rows_by_device_path_or_short_name(settings, client, keys, device):
    dev = uuid.UUID(device["id"])
    await project(settings.database_url, *(
        drive_health_event(dev, "web-1", at=_at(m), temperature=30 + m, hours=1000 + m, healthy=m != 3)
        for m in range(5)))
    h = auth(keys["viewer"])
    pages = [await client.get(path, headers=h) for path in (
        "/devices/web-1/drives/sda/history", "/devices/web-1/drives/%2Fdev%2Fsda/history",
        "/devices/web-1/drives/dev/sda/history")]
    for r in pages:
        assert r.status_code == 200, r.text
        assert [row["temperature_celsius"] for row in r.json()["items"]] == [30, 31, 32, 33, 34]
    row = pages[0].json()["items"][3]
    assert (row["drive_name"], row["power_on_hours"], row["is_healthy"], row["smartctl_exit_status"]) == (
        "/dev/sda", 1003, False, 8)
    assert row["smart_attributes"][0]["raw"] == 12 and row["model"] == "WDC WD40EFRX"
    nvme = (await client.get("/devices/web-1/drives/nvme0n1/history", params=_window(1, 3), headers=h)).json()
    assert [row["temperature_celsius"] for row in nvme["items"]] == [33, 34]
    r = await client.get("/devices/web-1/drives/sdz/history", headers=h)
    assert r.status_code == 404 and "sdz" in r.json()["detail"]


async def test_drive_history_in_time_buckets(app, settings, client, keys, device):
    dev = uuid.UUID(device["id"])
    await project(settings.database_url, *(
        drive_health_event(dev, "web-1", at=_at(m), temperature=30 + m, hours=1000 + m, healthy=m != 3)
        for m in (0, 2, 4, 5, 9)))
    r = await client.get("/devices/web-1/drives/sda/history", params={**_window(0, 10), "bucket": "5m"},
                         headers=auth(keys["viewer"]))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["function"] == ("time_bucket" if app.state.timescaledb else "date_bin")
    assert body["drive"] == "/dev/sda"
    got = [(datetime.fromisoformat(b["bucket"]), b["samples"], b["temperature_avg"], b["temperature_min"],
            b["temperature_max"], b["power_on_hours"], b["is_healthy"]) for b in body["items"]]
    assert got == [(_at(0), 3, 32.0, 30, 34, 1004, True), (_at(5), 2, 37.0, 35, 39, 1009, True)]
    assert body["items"][0]["smart_attributes"][0]["name"] == "Reallocated_Sector_Ct"


async def test_drive_history_validation(settings, client, keys, device):
    await project(settings.database_url, drive_health_event(uuid.UUID(device["id"]), "web-1", at=_at(0)))
    h = auth(keys["viewer"])
    url = "/devices/web-1/drives/sda/history"
    for params, field, reason in (
        ({"start": T0.isoformat(), "bucket": "30s"}, "bucket", "between 1m and 1d"),
        ({"start": T0.isoformat(), "bucket": "5x"}, "bucket", "unit s, m, h or d"),
        ({"start": "2000-01-01T00:00:00Z", "bucket": "1m"}, "bucket", "10000"),
        ({"bucket": "5m"}, "", "bucket needs a start"),
        ({"page": 0}, "page", ""),
        ({"page_size": 5001}, "page_size", ""),
        ({"start": "yesterday"}, "start", ""),
        ({"start": "1700000000"}, "start", "RFC 3339"),
        ({"start": "2026-01-05T12:00:00"}, "start", "RFC 3339"),
        ({"shoe_size": 9}, "shoe_size", ""),
    ):
        r = await client.get(url, params=params, headers=h)
        assert r.status_code == 422, (params, r.text)
        message = r.json()["message"]
        assert message.startswith(f"{field}:") if field else True, message
        assert reason in message, message


async def test_network_counters_over_time(settings, client, keys, device):
    dev = uuid.UUID(device["id"])
    await project(settings.database_url, *(network_event(dev, "web-1", at=_at(m), rx=1000 * (m + 1)) for m in range(3)))
    h = auth(keys["viewer"])
    r = await client.get("/devices/web-1/network/history", params={"interface": "eth0"}, headers=h)
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert [(row["rx_bytes"], row["tx_bytes"]) for row in items] == [(1000, 500), (2000, 1000), (3000, 1500)]
    assert items[0]["addresses"][0]["address"] == "10.0.0.5" and items[0]["state"] == "UP"
    every = (await client.get("/devices/web-1/network/history", params=_window(1, 3), headers=h)).json()
    assert [row["interface"] for row in every["items"]] == ["eth0", "lo", "eth0", "lo"]
    none = (await client.get("/devices/web-1/network/history", params={"interface": "wlan0"}, headers=h)).json()
    assert none["total_count"] == 0
    r = await client.get("/devices/web-1/network/history", params={"interface": "x" * 65}, headers=h)
    assert r.status_code == 422 and r.json()["message"].startswith("interface:")


async def test_zfs_health_and_errors_over_time(settings, client, keys, device):
    dev = uuid.UUID(device["id"])
    await project(settings.database_url, zfs_event(dev, "web-1", at=_at(0)),
                  zfs_event(dev, "web-1", at=_at(1), health="DEGRADED", checksum_errors=7))
    h = auth(keys["viewer"])
    r = await client.get("/devices/web-1/zfs/history", params={"pool": "tank"}, headers=h)
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert [(row["health"], row["checksum_errors"]) for row in items] == [("ONLINE", 0), ("DEGRADED", 7)]
    assert items[1]["vdevs"][2]["checksum_errors"] == 7 and items[0]["scrub_state"] == "finished"
    both = (await client.get("/devices/web-1/zfs/history", params={"start": _at(1).isoformat()}, headers=h)).json()
    assert [row["pool"] for row in both["items"]] == ["backup", "tank"]


async def test_inventory_drift_lists_only_snapshots_that_changed(settings, client, keys, device):
    dev = uuid.UUID(device["id"])
    upgrade = Drift(changed=True, system=[Change(name="kernel", old="6.1.0-18-amd64", new="6.1.0-20-amd64")])
    await project(settings.database_url,
                  inventory_event(dev, "web-1", at=_at(0)),  # the first snapshot: no drift
                  inventory_event(dev, "web-1", at=_at(1), kernel="6.1.0-20-amd64", drift=upgrade),
                  inventory_event(dev, "web-1", at=_at(2), kernel="6.1.0-20-amd64", drift=Drift()),
                  inventory_event(dev, "web-1", at=_at(3), kernel="6.1.0-18-amd64", drift=Drift(
                      changed=True, system=[Change(name="kernel", old="6.1.0-20-amd64", new="6.1.0-18-amd64")])))
    h = auth(keys["viewer"])
    r = await client.get("/devices/web-1/inventory/drift", headers=h)
    assert r.status_code == 200, r.text
    page = r.json()
    assert page["total_count"] == 2
    assert [row["drift"]["system"][0]["new"] for row in page["items"]] == ["6.1.0-20-amd64", "6.1.0-18-amd64"]
    assert page["items"][0]["kernel"] == "6.1.0-20-amd64" and page["items"][0]["os_name"] == "Debian GNU/Linux"
    second = (await client.get("/devices/web-1/inventory/drift", params={"page_size": 1, "page": 2}, headers=h)).json()
    assert datetime.fromisoformat(second["items"][0]["time"]) == _at(3) and second["total_pages"] == 2
    window = (await client.get("/devices/web-1/inventory/drift", params=_window(2, 3), headers=h)).json()
    assert window["items"] == []
