"""Configuration reads over rows as the writer stores them: current files, history, content, diffs, changes."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import asyncpg
import pytest_asyncio

from tests.api.conftest import auth

T0 = datetime(2024, 6, 1, 8, 0, tzinfo=timezone.utc)
NGINX = "/etc/nginx/conf.d/app.conf"
COMPOSE = "/srv/app/docker-compose.yml"


async def _snapshot(conn, device_id, minutes, path, config_type, content, change="modified", risk="MEDIUM"):
    sid = uuid.uuid4()
    await conn.execute(
        "INSERT INTO configuration_snapshots (id, time, device_id, event_id, config_type, file_path, content_hash, "
        "file_size_bytes, raw_content, content_truncated, change_type, collection_source, requires_restart, "
        "risk_level) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, false, $10, 'watcher/w1', false, $11)",
        sid, T0 + timedelta(minutes=minutes), device_id, uuid.uuid4(), config_type, path, f"{hash(content):x}",
        len(content or ""), content, change, risk,
    )
    await conn.execute(
        "INSERT INTO configuration_change_events (id, time, device_id, snapshot_id, config_type, file_path, "
        "change_type, requires_restart, risk_level, processed) VALUES ($1, $2, $3, $4, $5, $6, $7, false, $8, false)",
        uuid.uuid4(), T0 + timedelta(minutes=minutes), device_id, sid, config_type, path, change, risk,
    )
    return str(sid)


@pytest_asyncio.fixture
async def snaps(settings, device) -> dict[str, str]:
    dev = uuid.UUID(device["id"])
    conn = await asyncpg.connect(settings.database_url)
    try:
        return {
            "n1": await _snapshot(conn, dev, 0, NGINX, "proxy_configs", "server {\n  listen 80;\n}\n", "created"),
            "n2": await _snapshot(conn, dev, 10, NGINX, "proxy_configs", "server {\n  listen 443;\n}\n", risk="HIGH"),
            "c1": await _snapshot(conn, dev, 5, COMPOSE, "docker_compose", "services: {}\n", "created", "LOW"),
            "c2": await _snapshot(conn, dev, 20, COMPOSE, "docker_compose", None, "deleted", "LOW"),
            "other": await _snapshot(conn, uuid.uuid4(), 1, NGINX, "proxy_configs", "x\n", "created"),
        }
    finally:
        await conn.close()


async def test_current_files_leave_out_deleted_ones(client, keys, snaps):
    h = auth(keys["viewer"])
    files = (await client.get("/devices/web-1/config", headers=h)).json()
    assert [(f["file_path"], f["id"]) for f in files] == [(NGINX, snaps["n2"])]
    assert "raw_content" not in files[0]
    assert (await client.get("/devices/web-1/config", params={"config_type": "docker_compose"}, headers=h)).json() == []
    assert (await client.get("/devices/web-1/config", params={"config_type": "a b"}, headers=h)).status_code == 422


async def test_history_of_one_file_newest_first(client, keys, snaps):
    r = await client.get("/devices/web-1/config/history", params={"path": NGINX}, headers=auth(keys["viewer"]))
    assert r.status_code == 200
    assert [s["id"] for s in r.json()["items"]] == [snaps["n2"], snaps["n1"]] and r.json()["total_count"] == 2
    r = await client.get("/devices/web-1/config/history", headers=auth(keys["viewer"]))
    assert r.status_code == 422 and r.json()["message"].startswith("path:")


async def test_snapshot_with_raw_content(client, keys, snaps):
    r = await client.get(f"/devices/web-1/config/snapshots/{snaps['n1']}", headers=auth(keys["viewer"]))
    assert r.status_code == 200 and r.json()["raw_content"] == "server {\n  listen 80;\n}\n"
    other = await client.get(f"/devices/web-1/config/snapshots/{snaps['other']}", headers=auth(keys["viewer"]))
    assert other.status_code == 404  # another device's snapshot
    assert (await client.get("/devices/web-1/config/snapshots/nope", headers=auth(keys["viewer"]))).status_code == 422


async def test_diff_against_the_previous_version_by_default(client, keys, snaps):
    h = auth(keys["viewer"])
    d = (await client.get(f"/devices/web-1/config/snapshots/{snaps['n2']}/diff", headers=h)).json()
    assert d["from_snapshot"]["id"] == snaps["n1"] and d["to_snapshot"]["id"] == snaps["n2"]
    assert "-  listen 80;\n+  listen 443;\n" in d["diff"] and (d["added_lines"], d["removed_lines"]) == (1, 1)
    assert d["diff"].startswith(f"--- {NGINX}") and d["content_available"]
    first = (await client.get(f"/devices/web-1/config/snapshots/{snaps['n1']}/diff", headers=h)).json()
    assert first["from_snapshot"] is None and first["added_lines"] == 3 and first["diff"].startswith("--- /dev/null")
    back = (await client.get(f"/devices/web-1/config/snapshots/{snaps['n1']}/diff",
                             params={"against": snaps["n2"]}, headers=h)).json()
    assert "-  listen 443;\n+  listen 80;\n" in back["diff"]
    gone = (await client.get(f"/devices/web-1/config/snapshots/{snaps['c2']}/diff", headers=h)).json()
    assert gone["removed_lines"] == 1 and not gone["content_available"]


async def test_change_events_filtered(client, keys, snaps, device):
    h = auth(keys["viewer"])

    async def ids(**params) -> list[str]:
        r = await client.get("/config/changes", params=params, headers=h)
        assert r.status_code == 200, r.text
        return [(c["file_path"], c["change_type"]) for c in r.json()["items"]]

    assert len(await ids()) == 5
    assert await ids(device="web-1") == [(COMPOSE, "deleted"), (NGINX, "modified"), (COMPOSE, "created"),
                                         (NGINX, "created")]
    assert await ids(device=device["id"], config_type="proxy_configs") == [(NGINX, "modified"), (NGINX, "created")]
    assert await ids(device="web-1", risk_level="high") == [(NGINX, "modified")]
    window = {"start": (T0 + timedelta(minutes=5)).isoformat(), "end": (T0 + timedelta(minutes=20)).isoformat()}
    assert await ids(device="web-1", **window) == [(NGINX, "modified"), (COMPOSE, "created")]
    assert (await client.get("/config/changes", params={"device": "ghost"}, headers=h)).status_code == 404
    r = await client.get("/config/changes", params={"start": window["end"], "end": window["start"]}, headers=h)
    assert r.status_code == 200 and r.json()["items"] == []  # a window ending before its start holds nothing
