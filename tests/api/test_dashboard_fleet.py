"""The dashboard's fleet page in headless Chromium against the real API, NATS and PostgreSQL: open violations by
severity with the diff that introduced them, a JSONPath search and drift between devices, every value as text."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx

from shared.policy_events import path_key
from tests.api.conftest import auth
from tests.api.test_dashboard import WAIT_MS, chromium, open_page  # noqa: F401 (the fixture)

NGINX = '/etc/nginx/<b>sites</b>/"x".conf'  # markup and quotes in a path stay text
UNIT = "/etc/systemd/system/app.service"


async def _snapshot(conn, device_id: uuid.UUID, path: str, content: str, at: datetime, change: str) -> uuid.UUID:
    sid = uuid.uuid4()
    await conn.execute(
        "INSERT INTO configuration_snapshots (id, time, device_id, event_id, config_type, file_path, content_hash, "
        "file_size_bytes, raw_content, content_truncated, change_type, collection_source, requires_restart, "
        "risk_level) VALUES ($1, $2, $3, $4, 'proxy_configs', $5, $6, $7, $8, false, $9, 'watcher/w1', false, 'LOW')",
        sid, at, device_id, uuid.uuid4(), path, hashlib.sha256(content.encode()).hexdigest(), len(content), content,
        change)
    return sid


async def _current(conn, device_id: uuid.UUID, path: str, config_type: str, parsed: dict, at: datetime) -> None:
    await conn.execute(
        "INSERT INTO config_current (device_id, path_key, file_path, config_type, time, snapshot_id, event_id, "
        "change_type, content_hash, parsed) VALUES ($1, $2, $3, $4, $5, $6, $7, 'MODIFY', $8, $9::jsonb)",
        device_id, path_key(path), path, config_type, at, uuid.uuid4(), uuid.uuid4(),
        hashlib.sha256(json.dumps(parsed).encode()).hexdigest(), json.dumps(parsed))


async def _violation(conn, device_id: uuid.UUID, policy: str, severity: str, path: str, at: datetime,
                     snapshot_id: uuid.UUID, matches: list) -> None:
    ref = {"event_id": str(uuid.uuid4()), "snapshot_id": str(snapshot_id), "time": at.isoformat(),
           "change_type": "MODIFY", "sha256": None}
    await conn.execute(
        "INSERT INTO config_violations (id, policy_id, policy_name, severity, message, device_id, config_type, "
        "file_path, path_key, state, matches, match_count, opened_at, introduced_by, fired_event_id, published, "
        "notified) VALUES ($1, $2, $3, $4, $5, $6, 'proxy_configs', $7, $8, 'open', $9::jsonb, $10, $11, "
        "$12::jsonb, $13, true, true)",
        uuid.uuid4(), uuid.uuid4(), policy, severity, f"<i>{policy}</i> found", device_id, path, path_key(path),
        json.dumps(matches), len(matches), at, json.dumps(ref), uuid.uuid4())


async def _seed(url: str, web: uuid.UUID, db: uuid.UUID, now: datetime) -> None:
    conn = await asyncpg.connect(url)
    try:
        await _snapshot(conn, web, NGINX, "autoindex off;\n", now - timedelta(minutes=30), "created")
        introduced = await _snapshot(conn, web, NGINX, "autoindex on;\n", now - timedelta(minutes=20), "modified")
        await _violation(conn, web, "nginx-autoindex", "high", NGINX, now - timedelta(minutes=20), introduced,
                         ["<img src=x>", {"on": True}])
        await _violation(conn, db, "unit-root", "critical", UNIT, now - timedelta(minutes=10), uuid.uuid4(), ["root"])
        for device, value in ((web, "on"), (db, "off")):
            await _current(conn, device, NGINX, "proxy_configs", {"autoindex": value}, now)
            await _current(conn, device, "/etc/nginx/mime.types", "proxy_configs", {"types": {}}, now)
    finally:
        await conn.close()


async def test_the_fleet_page(live, keys, settings, chromium):
    from playwright.async_api import async_playwright, expect

    _, base = live
    async with httpx.AsyncClient(base_url=base, headers=auth(keys["admin"])) as http:
        ids = {}
        for name, address in (("web-1", "10.0.0.5"), ("db-1", "10.0.0.6")):
            r = await http.post("/devices", json={"name": name, "address": address})
            assert r.status_code == 201, r.text
            ids[name] = uuid.UUID(r.json()["id"])
    await _seed(settings.database_url, ids["web-1"], ids["db-1"], datetime.now(UTC))

    async with async_playwright() as pw:
        browser, page, errors = await open_page(pw, chromium)
        try:
            await page.goto(base + "/dashboard/")
            await page.fill("#key", keys["viewer"])
            await page.click("#login-form button[type=submit]")
            await page.click("#fleet-link")

            groups = page.locator("#fleet-violations .severity")
            await expect(groups).to_have_count(2, timeout=WAIT_MS)
            assert [await g.get_attribute("data-severity") for g in await groups.all()] == ["critical", "high"]
            await expect(page.locator("#fleet-violations .counts")).to_contain_text("1 critical")
            high = page.locator("#fleet-violations .severity[data-severity=high] tbody tr").first
            for text in ("web-1", NGINX, "nginx-autoindex", "<i>nginx-autoindex</i> found", '<img src=x>, {"on":true}'):
                await expect(high).to_contain_text(text)
            await expect(page.locator("#fleet-violations .severity[data-severity=critical]")).to_contain_text("db-1")
            await high.locator("button.diff-toggle").click()
            diff = page.locator("#fleet-violations tr.diff-row pre.diff")
            await expect(diff.locator(".add")).to_have_text("+autoindex on;", timeout=WAIT_MS)
            await expect(diff.locator(".del")).to_have_text("-autoindex off;")

            search = page.locator("#fleet-search")
            await expect(search.locator("select option[value=proxy_configs]")).to_have_count(1, timeout=WAIT_MS)
            await search.locator("input[name=jsonpath]").fill('$.autoindex ? (@ == "on")')
            await search.locator("select").select_option("proxy_configs")
            await search.locator("input[name=path]").fill("/etc/nginx/*")
            await search.locator("button[type=submit]").click()
            hits = search.locator(".body tbody tr")
            await expect(hits).to_have_count(1, timeout=WAIT_MS)
            await expect(hits).to_contain_text("web-1")
            await expect(hits).to_contain_text(NGINX)
            await search.locator("input[name=jsonpath]").fill("$.a ? (")
            await search.locator("button[type=submit]").click()
            await expect(search.locator(".body .error")).to_contain_text("jsonpath", timeout=WAIT_MS)

            drifted = page.locator("#fleet-drift ul.drift > li")
            await expect(drifted).to_have_count(2, timeout=WAIT_MS)
            await expect(drifted.first).to_have_attribute("data-drifted", "true")
            await expect(drifted.first).to_contain_text(NGINX)
            await expect(drifted.first.locator("ul.groups li")).to_have_count(2)
            await expect(drifted.first).to_contain_text("db-1")
            await expect(drifted.nth(1)).to_contain_text("same everywhere")

            assert await page.locator("#fleet-view b, #fleet-view i, #fleet-view img").count() == 0
            assert not errors, errors
        finally:
            await browser.close()
