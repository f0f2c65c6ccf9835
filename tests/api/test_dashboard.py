"""The dashboard in headless Chromium against the real API, NATS and PostgreSQL: sign in, a device's metrics,
a configuration diff and live updates, with every value from data rendered as text."""

from __future__ import annotations

import importlib.util
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest

from shared import events
from shared.collected import COLLECTED_TYPES
from shared.datatypes.containers.payload import Container, Containers
from shared.datatypes.drive_health.payload import Drive, DriveHealth
from shared.datatypes.network.payload import Interface, Network
from shared.datatypes.systemd_services.payload import SystemdServices, Unit
from shared.datatypes.zfs.payload import Pool, Zfs
from shared.names import Names
from tests.api.conftest import auth, project
from tests.factories import drive_health_event

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WAIT_MS = 30_000
PATH = '/etc/app/<b>x</b> "q" $(id).conf'  # file names may hold markup, quotes and shell syntax
CONTAINER = '<img src=x>"$(reboot)"'


@pytest.fixture
def chromium() -> str:
    """Debian's chromium and the playwright package; the test is skipped, saying which is missing, without them."""
    missing = [what for what, ok in [
        (f"{CHROMIUM} (apt-get install chromium)", Path(CHROMIUM).exists()),
        ("the playwright Python package (pip install playwright)", importlib.util.find_spec("playwright") is not None),
    ] if not ok]
    if missing:
        pytest.skip(reason="the dashboard test needs " + " and ".join(missing))
    return CHROMIUM


async def _seed(database_url: str, device_id: uuid.UUID, now: datetime) -> None:
    """Ten system_metrics rows (CPU ends at 42.5) and two versions of a configuration file, as the writer stores them."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.executemany(
            "INSERT INTO system_metrics (time, device_id, event_id, cpu_usage, memory_usage, load_1) "
            "VALUES ($1, $2, $3, $4, $5, $6)",
            [(now - timedelta(minutes=50 - 5 * i), device_id, uuid.uuid4(), 42.5 if i == 9 else 10.0 + 3 * i,
              30.0 + i, 0.2 * i) for i in range(10)])
        for minutes, content, change in [(30, "listen 80;\nworkers 4;\n", "created"),
                                          (20, "listen 443; # <i>tls</i>\nworkers 4;\n", "modified")]:
            sid, at = uuid.uuid4(), now - timedelta(minutes=minutes)
            await conn.execute(
                "INSERT INTO configuration_snapshots (id, time, device_id, event_id, config_type, file_path, "
                "content_hash, file_size_bytes, raw_content, content_truncated, change_type, collection_source, "
                "requires_restart, risk_level) VALUES ($1, $2, $3, $4, 'proxy_configs', $5, $6, $7, $8, false, $9, "
                "'watcher/w1', false, 'HIGH')",
                sid, at, device_id, uuid.uuid4(), PATH, f"h{minutes}", len(content), content, change)
            await conn.execute(
                "INSERT INTO configuration_change_events (id, time, device_id, snapshot_id, config_type, file_path, "
                "change_type, requires_restart, risk_level, processed) "
                "VALUES ($1, $2, $3, $4, 'proxy_configs', $5, $6, false, 'HIGH', false)",
                uuid.uuid4(), at, device_id, sid, PATH, change)
    finally:
        await conn.close()


async def open_page(pw, chromium: str):
    """A browser and its page; ``errors`` collects the page's uncaught errors and Content Security Policy refusals."""
    browser = await pw.chromium.launch(executable_path=chromium, args=ARGS, headless=True)
    page = await browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(WAIT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    page.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)
    return browser, page, errors


async def test_dashboard(live, keys, settings, chromium):
    from playwright.async_api import async_playwright, expect

    app, base = live
    async with httpx.AsyncClient(base_url=base) as http:
        r = await http.post("/devices", json={"name": "web-1", "address": "10.0.0.5"}, headers=auth(keys["admin"]))
        assert r.status_code == 201, r.text
        device = r.json()
        assert (await http.get("/")).headers["location"] == "/dashboard/"
        assert "/dashboard/" not in str((await http.get("/openapi.json")).json()["paths"])
    now = datetime.now(UTC)
    await _seed(settings.database_url, uuid.UUID(device["id"]), now)
    await project(settings.database_url, *(  # four readings 15 min apart: one per bucket of the 24 h history
        drive_health_event(uuid.UUID(device["id"]), "web-1", at=now - timedelta(minutes=50 - 15 * i),
                           temperature=35 + i) for i in range(4)))

    async with async_playwright() as pw:
        browser, page, errors = await open_page(pw, chromium)
        try:
            await page.goto(base + "/")
            await expect(page).to_have_url(base + "/dashboard/")
            await page.fill("#key", "not-a-key")
            await page.click("#login-form button[type=submit]")
            await expect(page.locator("#login-error")).to_contain_text("refused", timeout=WAIT_MS)
            await page.fill("#key", keys["viewer"])
            await page.click("#login-form button[type=submit]")

            await expect(page.locator("#login")).to_be_hidden(timeout=WAIT_MS)
            link = page.locator("#devices a[data-device='web-1']")
            await expect(link).to_contain_text("enabled", timeout=WAIT_MS)
            await expect(link).to_contain_text("last collection", timeout=WAIT_MS)
            await link.click()

            cpu = page.locator("#chart-cpu svg.chart")
            await expect(cpu).to_have_attribute("data-points", "10", timeout=WAIT_MS)
            await expect(page.locator(".latest[data-metric=cpu]")).to_have_text("42.5%", timeout=WAIT_MS)
            assert len((await page.locator("#chart-cpu polyline.line").get_attribute("points")).split()) == 10

            # No collector runs: each collected type says so instead of failing the page. A type without a
            # card of its own (network, inventory) has a generic one, from GET /datatypes.
            for section in ("containers", "drive_health", "zfs", "systemd_services", "network", "inventory"):
                await expect(page.locator(f"#{section} .body")).to_contain_text("no data", timeout=WAIT_MS)
            for section in ("network", "inventory"):
                await expect(page.locator(f"section.card.generic#{section}")).to_have_count(1)
            assert await page.locator("section.card.generic#containers, section.card.generic#metrics").count() == 0

            entries = page.locator("#timeline li[data-kind=config_change]")
            await expect(entries).to_have_count(2, timeout=WAIT_MS)
            await expect(entries.last).to_contain_text(PATH)  # newest first; the path shows as text
            await entries.first.locator("button.diff-toggle").click()
            diff = entries.first.locator("pre.diff")
            await expect(diff.locator(".add")).to_have_text("+listen 443; # <i>tls</i>", timeout=WAIT_MS)
            await expect(diff.locator(".del")).to_have_text("-listen 80;")
            assert await page.locator("#timeline b, #timeline i").count() == 0

            # A live collection arrives over the event stream (read by fetch, the key in a header).
            await expect(page.locator("#live")).to_contain_text("live", timeout=WAIT_MS)
            live_payloads = {
                "containers": (COLLECTED_TYPES["containers"], Containers(runtime="docker", containers=[
                    Container(id="abc123", name=CONTAINER, image="nginx:1.27", status="Up 2 minutes", state="running"),
                ])),
                "drive_health": (COLLECTED_TYPES["drive_health"], DriveHealth(drives=[
                    Drive(name="/dev/sda", model="<Disk>", temperature_celsius=38, healthy=True)])),
                "zfs": (COLLECTED_TYPES["zfs"], Zfs(pools=[Pool(name="tank", health="DEGRADED", capacity_percent=71)])),
                "systemd_services": (COLLECTED_TYPES["systemd_services"], SystemdServices(
                    units=[Unit(name="nginx.service", load="loaded", active="failed", sub="failed")],
                    failed=["nginx.service"], total=1)),
                "network": (COLLECTED_TYPES["network"], Network(interfaces=[
                    Interface(name="eth0", state="UP", mtu=1500, mac="<mac>", flags=["UP"])])),
            }
            names = Names(settings.subject_prefix)
            for data_type, (cls, payload) in live_payloads.items():
                ev = events.new_event(cls, device_id=uuid.UUID(device["id"]), device="web-1", service="collector",
                                      instance="c1", trigger="poll", payload=payload)
                await app.state.nc.publish(names.collected("web-1", data_type), events.encode(ev))
            row = page.locator("#containers tbody tr")
            await expect(row).to_contain_text(CONTAINER, timeout=WAIT_MS)
            await expect(row).to_contain_text("running")
            assert await page.locator("#containers img").count() == 0
            await expect(page.locator("#drive_health tbody tr")).to_contain_text("38 °C", timeout=WAIT_MS)
            await expect(page.locator("#drive_health tbody tr")).to_contain_text("<Disk>")
            history = page.locator("#drive_health tbody tr .temp-history svg.spark")  # stored, by the history route
            await expect(history).to_have_attribute("data-points", "4", timeout=WAIT_MS)
            await expect(page.locator("#zfs tbody tr")).to_contain_text("DEGRADED", timeout=WAIT_MS)
            await expect(page.locator("#systemd_services tbody tr").first).to_contain_text("nginx.service",
                                                                                          timeout=WAIT_MS)
            generic = page.locator("#network .items[data-field=interfaces] tbody tr")  # the first list's items
            await expect(generic).to_have_count(1, timeout=WAIT_MS)
            await expect(generic).to_contain_text("eth0")
            await expect(generic).to_contain_text("<mac>")  # as text
            heads = await page.locator("#network thead th").all_inner_texts()
            assert heads[:4] == ["name", "index", "state", "mtu"] and not {"flags", "addresses"} & set(heads), heads

            # A fired alert opens onto what changed just before it: an nginx change, with its diff.
            await _alert_after_a_config_change(app, settings, base, keys, device, now)
            await page.locator("#alerts button.causes-toggle").first.click()
            cause = page.locator("#alerts ol.causes li[data-kind=config]")
            await expect(cause).to_contain_text("/etc/nginx/sites-enabled/default", timeout=WAIT_MS)
            assert await page.locator("#alerts ol.causes li[data-kind=alert]").count() == 0  # not the alert itself
            await cause.locator("button.diff-toggle").click()
            await expect(cause.locator(".diff-view")).to_contain_text("/etc/nginx/sites-enabled/default",
                                                                      timeout=WAIT_MS)
            assert not errors, errors
        finally:
            await browser.close()


async def _alert_after_a_config_change(app, settings, base: str, keys: dict, device: dict, now: datetime) -> None:
    """An nginx change 3 minutes ago (in the config stream and the database), then cpu-high fired."""
    from shared.alert_events import AlertChanged
    from shared.runtime.publish import publish_event
    from tests.alerts.test_causes import nginx_change

    async with httpx.AsyncClient(base_url=base, headers=auth(keys["admin"])) as http:
        r = await http.post("/rules", json={"name": "cpu-high", "metric": "cpu", "threshold": 90})
        assert r.status_code == 201, r.text
        rule = r.json()
    names, device_id = Names(settings.subject_prefix), uuid.UUID(device["id"])
    change = nginx_change(now - timedelta(minutes=3), device_id)
    await publish_event(app.state.js, names.config("web-1", "proxy_configs"), change)
    fired = events.new_event(
        AlertChanged, device_id=device_id, device="web-1", service="alerts", instance="test", trigger="watch",
        occurred_at=now - timedelta(minutes=1), rule_id=uuid.UUID(rule["id"]), rule="cpu-high", metric="cpu",
        operator=">", state="fired", value=95.0, threshold=90.0, since=now - timedelta(minutes=1))
    await project(settings.database_url, change, fired)
    await publish_event(app.state.js, names.alert("web-1", "cpu-high"), fired)  # the page reloads its alerts
