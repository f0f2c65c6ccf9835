"""The role matrix: every endpoint with a viewer, an operator and an admin key."""

from __future__ import annotations

import uuid

import asyncpg
import pytest
import pytest_asyncio

from services.api.keys import create_api_key
from shared.datatypes import REGISTRY
from shared.names import Names
from tests import factories
from tests.api.conftest import auth, project, put_cached, put_event

COLLECTED = (factories.containers_event, factories.drive_health_event, factories.network_event,
             factories.zfs_event, factories.systemd_event, factories.inventory_event)

V, O, A = "viewer", "operator", "admin"  # noqa: E741 (the roles' initials)
READ = {V: 200, O: 200, A: 200}
ADMIN_ONLY = {V: 403, O: 403}

# (method, path, json body, {role: expected status}); {snapshot} and {key_id} come from the seeded world.
MATRIX = [
    ("GET", "/health", None, READ),
    ("GET", "/ready", None, READ),
    ("GET", "/openapi.json", None, READ),
    ("GET", "/devices", None, READ),
    ("POST", "/devices", {"name": "new-1"}, {**ADMIN_ONLY, A: 201}),
    ("GET", "/devices/web-1", None, READ),
    ("PATCH", "/devices/web-1", {"port": 2222}, {**ADMIN_ONLY, A: 200}),
    ("DELETE", "/devices/web-1", None, {**ADMIN_ONLY, A: 204}),
    ("GET", "/devices/web-1/metrics", None, READ),
    ("GET", "/devices/web-1/metrics?force_refresh=true", None, {V: 403, O: 504, A: 504}),  # no collector runs
    ("GET", "/devices/web-1/data/system_metrics", None, READ),
    ("GET", "/devices/web-1/data/system_metrics?force_refresh=true", None, {V: 403, O: 504, A: 504}),
    ("GET", "/devices/web-1/containers", None, READ),
    ("GET", "/devices/web-1/containers?force_refresh=true", None, {V: 403, O: 504, A: 504}),
    ("GET", "/devices/web-1/containers/{container}/history", None, READ),
    ("GET", "/devices/web-1/drives", None, READ),
    ("GET", "/devices/web-1/drives/{drive}/history", None, READ),
    ("GET", "/devices/web-1/network", None, READ),
    ("GET", "/devices/web-1/network/history", None, READ),
    ("GET", "/devices/web-1/zfs", None, READ),
    ("GET", "/devices/web-1/zfs/history", None, READ),
    ("GET", "/devices/web-1/services", None, READ),
    ("GET", "/devices/web-1/inventory", None, READ),
    ("GET", "/devices/web-1/inventory/drift", None, READ),
    ("GET", "/devices/web-1/timeline", None, READ),
    ("GET", "/devices/web-1/changes", None, READ),
    ("GET", "/devices/ghost/events", None, {V: 404, O: 404, A: 404}),  # a live stream: see test_stream
    ("GET", "/devices/web-1/config", None, READ),
    ("GET", "/devices/web-1/config/history?path=/etc/app.conf", None, READ),
    ("GET", "/devices/web-1/config/snapshots/{snapshot}", None, READ),
    ("GET", "/devices/web-1/config/snapshots/{snapshot}/diff", None, READ),
    ("GET", "/config/changes", None, READ),
    ("GET", "/config/search", None, READ),
    ("GET", "/config/compare?path=/etc/app.conf&devices=web-1,web-1", None, READ),
    ("GET", "/config/drift", None, READ),
    ("GET", "/devices/web-1/watch", None, READ),
    ("GET", "/audit", None, READ),
    ("GET", "/performance", None, READ),
    ("GET", "/cache/stats", None, READ),
    ("GET", "/metrics", None, READ),
    ("DELETE", "/cache/web-1/system_metrics", None, {V: 403, O: 204, A: 204}),
    ("GET", "/keys", None, {**ADMIN_ONLY, A: 200}),
    ("POST", "/keys", {"name": "ci", "role": "viewer"}, {**ADMIN_ONLY, A: 201}),
    ("DELETE", "/keys/{key_id}", None, {**ADMIN_ONLY, A: 204}),
    ("GET", "/rules", None, READ),
    ("POST", "/rules", {"name": "cpu-new", "metric": "cpu", "threshold": 90}, {**ADMIN_ONLY, A: 201}),
    ("GET", "/rules/{rule}", None, READ),
    ("PATCH", "/rules/{rule}", {"threshold": 95}, {**ADMIN_ONLY, A: 200}),
    ("DELETE", "/rules/{rule}", None, {**ADMIN_ONLY, A: 204}),
    ("GET", "/alerts", None, READ),
    ("GET", "/alerts/active", None, READ),
    ("GET", "/datatypes", None, READ),
    ("GET", "/config/policies", None, READ),
    ("POST", "/config/policies", {"name": "new-policy", "config_type": "proxy_configs", "jsonpath": "$.x",
                                  "message": "m"}, {**ADMIN_ONLY, A: 201}),
    ("GET", "/config/policies/{policy}", None, READ),
    ("PATCH", "/config/policies/{policy}", {"severity": "high"}, {**ADMIN_ONLY, A: 200}),
    ("DELETE", "/config/policies/{policy}", None, {**ADMIN_ONLY, A: 409}),  # a built-in one
    ("POST", "/config/policies/evaluate", None, {**ADMIN_ONLY, A: 503}),  # no policy evaluator runs
    ("GET", "/config/violations", None, READ),
    ("GET", "/config/violations/{violation_id}", None, {V: 404, O: 404, A: 404}),
]
# The generic reads of every registered type not listed above. The world caches values only of COLLECTED's types,
# so the latest value of any other waits for a refresh that no collector answers.
_LISTED = {p for _, p, _, _ in MATRIX}
MATRIX += [("GET", f"/devices/web-1/{t.api.path}/history", None, READ) for t in REGISTRY.values()
           if t.api.history and f"/devices/web-1/{t.api.path}/history" not in _LISTED]
MATRIX += [("GET", f"/devices/web-1/{t.api.path}", None, {V: 504, O: 504, A: 504}) for t in REGISTRY.values()
           if t.api.latest and f"/devices/web-1/{t.api.path}" not in _LISTED]


@pytest_asyncio.fixture
async def world(app, client, keys, js, settings, device) -> dict[str, str]:
    """A device with fresh cached values of every type, their stored rows and a config snapshot, a spare key to
    revoke and an alert rule."""
    await put_cached(app, js, settings, device)
    collected = [build(uuid.UUID(device["id"]), device["name"]) for build in COLLECTED]
    for ev in collected:
        await put_event(app, js, settings, ev)
    await project(settings.database_url, *collected)
    snapshot = uuid.uuid4()
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute(
            "INSERT INTO configuration_snapshots (id, time, device_id, event_id, config_type, file_path, content_hash,"
            " raw_content, content_truncated, change_type, collection_source, requires_restart, risk_level) "
            "VALUES ($1, now(), $2, $1, 'proxy_configs', '/etc/app.conf', 'h', 'a\n', false, 'created', 'w', false, "
            "'LOW')", snapshot, uuid.UUID(device["id"]))
    finally:
        await conn.close()
    kv = await js.key_value(Names(settings.subject_prefix).watch_state_bucket)
    await kv.put(f"{device['name']}._status", b'{"watch_mode": "inotifywait", "files": 1}')
    _, key_id = await create_api_key(settings.database_url, "viewer", "spare")
    r = await client.post("/rules", json={"name": "cpu-high", "metric": "cpu", "threshold": 90},
                          headers=auth(keys["admin"]))
    assert r.status_code == 201, r.text
    return {"snapshot": str(snapshot), "key_id": str(key_id), "rule": r.json()["id"], "container": "app-1",
            "drive": "sda", "policy": "nginx-autoindex", "violation_id": str(uuid.uuid4())}


@pytest.mark.parametrize("role", [V, O, A])
@pytest.mark.parametrize("method, path, body, expected", MATRIX, ids=[f"{m} {p}" for m, p, _, _ in MATRIX])
async def test_role_matrix(client, keys, world, role, method, path, body, expected):
    r = await client.request(method, path.format(**world), json=body, headers=auth(keys[role]))
    assert r.status_code == expected[role], r.text
    if r.status_code in (403, 504):
        assert r.json()["detail"]


def test_the_matrix_covers_every_endpoint(app):
    covered = {(m, p.split("?")[0]) for m, p, _, _ in MATRIX}
    for path, ops in app.openapi()["paths"].items():
        for method in ops:
            concrete = path.replace("{device}", "web-1").replace("{data_type}", "system_metrics") \
                .replace("{snapshot_id}", "{snapshot}")
            assert (method.upper(), concrete) in covered or (method.upper(), path.replace("{device}", "ghost")) \
                in covered, (method, path)
