"""The generic cached read of any collected data type, and its freshness thresholds."""

from __future__ import annotations

from datetime import datetime

import pytest

from services.api.main import create_app
from services.api.settings import ApiSettings
from shared.events import COLLECTED_TYPES
from tests.api.conftest import auth, put_cached


async def test_fresh_cached_value_with_age_and_source(app, js, settings, client, keys, device):
    ev = await put_cached(app, js, settings, device, age_s=5)
    r = await client.get("/devices/web-1/data/system_metrics", headers=auth(keys["viewer"]))
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["source"], body["fresh"], body["freshness_threshold_s"]) == ("cache", True, 300)
    assert body["age_seconds"] >= 5 and datetime.fromisoformat(body["occurred_at"]) == ev.occurred_at
    assert body["event_id"] == str(ev.event_id) and body["payload"]["cpu_percent"] == 12.5
    assert body["device_id"] == device["id"] and body["data_type"] == "system_metrics"
    by_id = await client.get(f"/devices/{device['id']}/data/system_metrics", headers=auth(keys["viewer"]))
    assert by_id.json()["event_id"] == body["event_id"]


async def test_the_events_own_threshold_decides_freshness(app, js, settings, client, keys, device):
    await put_cached(app, js, settings, device, age_s=400, freshness_threshold_s=600)
    r = await client.get("/devices/web-1/data/system_metrics", headers=auth(keys["viewer"]))
    assert r.status_code == 200 and r.json()["freshness_threshold_s"] == 600


async def test_settings_override_the_events_threshold(api_settings, js, keys, device):
    import httpx

    s = ApiSettings(**{**api_settings.model_dump(), "freshness_overrides": {"system_metrics": 2}})
    app = create_app(s)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as c,
    ):
        await put_cached(app, js, api_settings, device, age_s=5, freshness_threshold_s=600)
        r = await c.get("/devices/web-1/data/system_metrics", headers=auth(keys["viewer"]))
        assert r.status_code == 504  # 5 s old, fresh for 2 s: a refresh was asked for
        stats = (await c.get("/cache/stats", headers=auth(keys["viewer"]))).json()
        assert stats["by_data_type"]["system_metrics"]["stale"] == 1


@pytest.mark.parametrize("device_name, data_type, status", [("web-1", "nope", 422), ("ghost", "system_metrics", 404)])
async def test_unknown_data_type_is_422_and_unknown_device_404(client, keys, device, device_name, data_type, status):
    r = await client.get(f"/devices/{device_name}/data/{data_type}", headers=auth(keys["viewer"]))
    assert r.status_code == status
    if status == 422:
        assert r.json()["message"].startswith("data_type:")


async def test_every_collected_type_is_served(client, keys, device):
    spec = (await client.get("/openapi.json")).json()
    param = next(p for p in spec["paths"]["/devices/{device}/data/{data_type}"]["get"]["parameters"]
                 if p["name"] == "data_type")
    schema = param["schema"]
    assert set(schema.get("enum") or [schema.get("const")]) == set(COLLECTED_TYPES)
