"""A device's timeline merges config changes, container state changes and collection failures."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import asyncpg

from tests.api.conftest import auth

T0 = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=1)


async def _seed(url: str, dev: uuid.UUID) -> None:
    conn = await asyncpg.connect(url)
    try:
        for minutes, cid, state in ((0, "a", "running"), (1, "b", "running"), (10, "a", "running"),
                                    (20, "a", "exited"), (30, "a", "running"), (30, "b", "running")):
            await conn.execute(
                "INSERT INTO container_snapshots (time, device_id, container_id, event_id, name, image, state, removed)"
                " VALUES ($1, $2, $3, $4, $5, 'nginx:1', $6, false)",
                T0 + timedelta(minutes=minutes), dev, cid, uuid.uuid4(), f"app-{cid}", state,
            )
        await conn.execute(
            "INSERT INTO configuration_change_events (id, time, device_id, snapshot_id, config_type, file_path, "
            "change_type, requires_restart, risk_level, processed) "
            "VALUES ($1, $2, $3, $1, 'proxy_configs', '/etc/nginx/app.conf', 'modified', true, 'HIGH', false)",
            uuid.uuid4(), T0 + timedelta(minutes=15), dev,
        )
        for minutes, status in ((5, "error"), (25, "success"), (35, "unsupported"), (40, "unsupported"),
                                (45, "unsupported")):
            await conn.execute(
                "INSERT INTO data_collection_audit (time, event_id, device_id, operation_id, data_type, "
                "collection_method, trigger, cache_hit, status, error_message, force_refresh, ssh_command_count, "
                "records_created, records_updated) VALUES ($1, $2, $3, $2, 'containers', 'ssh', 'poll', false, $4, "
                "'docker: not found', false, 1, 0, 0)",
                T0 + timedelta(minutes=minutes), uuid.uuid4(), dev, status,
            )
    finally:
        await conn.close()


async def test_entries_in_time_order(settings, client, keys, device):
    await _seed(settings.database_url, uuid.UUID(device["id"]))
    r = await client.get("/devices/web-1/timeline", headers=auth(keys["viewer"]))
    assert r.status_code == 200, r.text
    got = [(round((datetime.fromisoformat(e["time"]) - T0).total_seconds() / 60), e["kind"]) for e in r.json()["items"]]
    assert got == [(5, "collection_failure"), (15, "config_change"), (20, "container_state"),
                   (30, "container_state"), (35, "collection_failure")]
    items = r.json()["items"]
    assert items[2]["summary"] == "container app-a: running -> exited"
    assert items[2]["detail"]["previous_state"] == "running" and items[4]["detail"]["status"] == "unsupported"


async def test_kind_window_and_limit(settings, client, keys, device):
    await _seed(settings.database_url, uuid.UUID(device["id"]))
    h = auth(keys["viewer"])
    only = (await client.get("/devices/web-1/timeline", params={"kind": "container_state"}, headers=h)).json()
    assert [e["kind"] for e in only["items"]] == ["container_state"] * 2
    newest = (await client.get("/devices/web-1/timeline", params={"limit": 2}, headers=h)).json()["items"]
    assert [e["kind"] for e in newest] == ["container_state", "collection_failure"]
    window = {"start": (T0 + timedelta(minutes=10)).isoformat(), "end": (T0 + timedelta(minutes=21)).isoformat()}
    inside = (await client.get("/devices/web-1/timeline", params=window, headers=h)).json()["items"]
    assert [e["kind"] for e in inside] == ["config_change", "container_state"]
    r = await client.get("/devices/web-1/timeline", params={"kind": "alerts"}, headers=h)
    assert r.status_code == 422 and r.json()["message"].startswith("kind:")
    r = await client.get("/devices/web-1/timeline", params={"end": "0001-01-02T00:00:00Z"}, headers=h)
    assert r.status_code == 200 and r.json()["items"] == []  # the window starts at the earliest time


async def test_an_unsupported_type_is_shown_once_when_it_becomes_unsupported(settings, client, keys, device):
    """A host without docker answers "unsupported" on every poll; the timeline shows the change."""
    await _seed(settings.database_url, uuid.UUID(device["id"]))
    h = auth(keys["viewer"])
    r = await client.get("/devices/web-1/timeline", params={"kind": "collection_failure"}, headers=h)
    assert [(round((datetime.fromisoformat(e["time"]) - T0).total_seconds() / 60), e["detail"]["status"])
            for e in r.json()["items"]] == [(5, "error"), (35, "unsupported")]
    # A window that starts while the type is already unsupported shows nothing new.
    window = {"kind": "collection_failure", "start": (T0 + timedelta(minutes=38)).isoformat()}
    assert (await client.get("/devices/web-1/timeline", params=window, headers=h)).json()["items"] == []
