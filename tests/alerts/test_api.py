"""Rules through the API: stored in the database, mirrored to the rules KV bucket, evaluated; alerts read back."""

from __future__ import annotations

import uuid

import msgspec
from nats.js.errors import KeyNotFoundError

from shared.alert_events import AlertRule
from shared.names import Names
from shared.runtime.publish import publish_event
from tests.alerts.conftest import wait_caught_up
from tests.api.conftest import auth
from tests.factories import cpu
from tests.util import fetchval, wait_until


async def _kv_rule(js, settings, rule_id: str) -> AlertRule | None:
    kv = await js.key_value(Names(settings.subject_prefix).alert_rules_bucket)
    try:
        return msgspec.json.decode((await kv.get(rule_id)).value, type=AlertRule)
    except KeyNotFoundError:
        return None


async def test_rules_are_stored_and_mirrored_to_kv(client, keys, js, settings, device):
    admin, viewer = auth(keys["admin"]), auth(keys["viewer"])
    body = {"name": "disk-data", "metric": "disk", "selector": "/data", "threshold": 85, "duration_s": 300,
            "device": "web-1", "webhook_url": "https://hooks.example.com/services/T0/B0/s3cr3t",
            "webhook_format": "slack"}
    r = await client.post("/rules", json=body, headers=admin)
    assert r.status_code == 201, r.text
    created = r.json()
    assert (created["device_id"], created["device"], created["operator"], created["refire_interval_s"]) == \
           (device["id"], "web-1", ">", 3600)
    assert created["webhook_url"] == body["webhook_url"]
    assert await fetchval(settings.database_url, "SELECT count(*) FROM alert_rules WHERE name = 'disk-data'") == 1
    wire = await _kv_rule(js, settings, created["id"])
    assert wire is not None and (wire.metric, wire.selector, wire.threshold, wire.duration_s, str(wire.device_id)) == \
           ("disk", "/data", 85, 300, device["id"])

    seen = (await client.get(f"/rules/{created['id']}", headers=viewer)).json()
    assert seen["webhook_url"] == "https://hooks.example.com/…"  # a viewer never sees the token
    assert (await client.get("/rules/disk-data", headers=viewer)).json()["id"] == created["id"]
    assert [x["name"] for x in (await client.get("/rules?device=web-1", headers=viewer)).json()] == ["disk-data"]

    assert (await client.post("/rules", json=body, headers=admin)).status_code == 409
    bad = [{"name": "x", "metric": "load", "selector": "7"}, {"name": "a.b", "metric": "cpu"},
           {"name": "x", "metric": "nope"}, {"name": "x", "metric": "cpu", "webhook_url": "ftp://x"},
           {"name": "x", "metric": "cpu", "device": "not a name"}]
    for b in bad:
        r = await client.post("/rules", json=b, headers=admin)
        assert r.status_code == 422 and isinstance(r.json()["detail"], list), (b, r.text)  # one 422 shape
    r = await client.post("/rules", json={"name": "x", "metric": "cpu", "device": "ghost"}, headers=admin)
    assert r.status_code == 404 and "ghost" in r.json()["detail"]
    risk = await client.post("/rules", json={"name": "risky", "metric": "config_risk", "threshold": "HIGH"},
                             headers=admin)
    assert risk.status_code == 201 and (risk.json()["threshold"], risk.json()["operator"]) == (3, ">=")

    r = await client.patch(f"/rules/{created['id']}", json={"threshold": 90, "device": None, "enabled": False},
                           headers=admin)
    assert r.status_code == 200 and r.json()["device_id"] is None
    wire = await _kv_rule(js, settings, created["id"])
    assert (wire.threshold, wire.device_id, wire.enabled) == (90, None, False)

    assert (await client.delete("/rules/disk-data", headers=admin)).status_code == 204
    assert await _kv_rule(js, settings, created["id"]) is None
    assert (await client.get("/rules/disk-data", headers=viewer)).status_code == 404


async def test_the_cause_window_and_count_are_rule_fields_mirrored_to_kv(client, keys, js, settings):
    admin, viewer = auth(keys["admin"]), auth(keys["viewer"])
    r = await client.post("/rules", json={"name": "few", "metric": "cpu", "cause_window_s": 600, "cause_top": 2},
                          headers=admin)
    assert r.status_code == 201, r.text
    rule_id = r.json()["id"]
    seen = (await client.get("/rules/few", headers=viewer)).json()
    assert (seen["cause_window_s"], seen["cause_top"]) == (600, 2)
    wire = await _kv_rule(js, settings, rule_id)
    assert wire is not None and (wire.cause_window_s, wire.cause_top) == (600, 2)

    r = await client.patch("/rules/few", json={"cause_top": 0, "threshold": 80}, headers=admin)
    assert r.status_code == 200 and (r.json()["cause_window_s"], r.json()["cause_top"]) == (600, 0)
    wire = await _kv_rule(js, settings, rule_id)
    assert (wire.cause_window_s, wire.cause_top, wire.threshold) == (600, 0, 80)
    assert await fetchval(settings.database_url,
                          "SELECT cause_window_s * 100 + cause_top FROM alert_rules WHERE name = 'few'") == 60000

    plain = (await client.post("/rules", json={"name": "plain", "metric": "cpu"}, headers=admin)).json()
    assert (plain["cause_window_s"], plain["cause_top"]) == (1800, 5)
    wire = await _kv_rule(js, settings, plain["id"])
    assert (wire.cause_window_s, wire.cause_top) == (1800, 5)

    for bad in ({"cause_window_s": 59}, {"cause_window_s": 86401}, {"cause_top": -1}, {"cause_top": 21},
                {"cause_top": None}, {"cause_window_s": "soon"}):
        r = await client.post("/rules", json={"name": "bad", "metric": "cpu", **bad}, headers=admin)
        assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == next(iter(bad)), (bad, r.text)
        r = await client.patch("/rules/few", json=bad, headers=admin)
        assert r.status_code == 422, (bad, r.text)
    assert (await client.get("/rules/few", headers=viewer)).json()["cause_top"] == 0


async def test_a_rule_made_through_the_api_fires_and_the_alert_is_read_back(client, keys, js, settings, device,
                                                                            services):
    admin, viewer = auth(keys["admin"]), auth(keys["viewer"])
    r = await client.post("/rules", json={"name": "cpu-hot", "metric": "cpu", "threshold": 90, "duration_s": 30},
                          headers=admin)
    assert r.status_code == 201, r.text
    services.writer()
    await services.evaluator()
    subject = Names(settings.subject_prefix).collected("web-1", "system_metrics")
    dev = uuid.UUID(device["id"])
    for seconds, value in ((0, 95), (30, 96), (60, 20)):
        await publish_event(js, subject, cpu(dev, seconds, value, device="web-1"))
    await wait_caught_up(js, settings)

    async def two():
        page = (await client.get("/alerts?device=web-1&rule=cpu-hot", headers=viewer)).json()
        return page if page["total_count"] == 2 else None

    page = await wait_until(two, timeout=60, what="two alerts in the API")
    assert [(a["state"], a["value"]) for a in page["items"]] == [("resolved", 20), ("fired", 96)]
    fired = (await client.get("/alerts?state=fired", headers=viewer)).json()["items"]
    assert len(fired) == 1 and fired[0]["since"].startswith("2026-03-01T12:00:00")
    timeline = (await client.get("/devices/web-1/timeline?start=2026-03-01T00:00:00Z&end=2026-03-02T00:00:00Z",
                                 headers=viewer)).json()
    assert [e["detail"]["state"] for e in timeline["items"] if e["kind"] == "alert"] == ["fired", "resolved"]


async def test_rules_refuse_loopback_link_local_and_private_webhooks(client, keys):
    admin = auth(keys["admin"])
    for url in ("http://127.0.0.1:9/hook", "http://localhost:9/hook", "http://169.254.169.254/latest/meta-data",
                "http://10.0.0.5/hook", "http://[::1]/hook", "http://[::ffff:127.0.0.1]/hook", "http://0/hook"):
        r = await client.post("/rules", json={"name": "leak", "metric": "cpu", "webhook_url": url}, headers=admin)
        assert r.status_code == 422, (url, r.text)
        assert r.json()["detail"][0]["loc"] == ["body", "webhook_url"] and "ALLOW_PRIVATE" in r.json()["message"]
    r = await client.post("/rules", json={"name": "ok", "metric": "cpu"}, headers=admin)
    assert r.status_code == 201
    r = await client.patch("/rules/ok", json={"webhook_url": "http://127.0.0.1:9/hook"}, headers=admin)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "webhook_url"]


async def test_private_webhooks_are_accepted_when_the_setting_allows_them(api_settings, keys):
    import httpx

    from services.api.main import create_app

    app = create_app(api_settings.model_copy(update={"alerts_webhook_allow_private": True}))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as c,
    ):
        r = await c.post("/rules", json={"name": "lan", "metric": "cpu", "webhook_url": "http://10.0.0.5/hook"},
                         headers=auth(keys["admin"]))
        assert r.status_code == 201, r.text
