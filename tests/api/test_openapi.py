"""The OpenAPI document tells the truth: every error answered is documented with its body, 422s have one shape."""

from __future__ import annotations

from tests.api.conftest import auth


async def _doc(client) -> dict:
    return (await client.get("/openapi.json")).json()


async def test_every_documented_error_has_a_body_schema_and_shared_answers_are_listed(client):
    doc = await _doc(client)
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            responses = op["responses"]
            for code, answer in responses.items():
                if int(code) >= 400:
                    assert "application/json" in answer.get("content", {}), (method, path, code)
            if op.get("security"):
                assert {"401", "403", "503"} <= set(responses), (method, path)
            if "requestBody" in op:
                assert {"413", "422"} <= set(responses), (method, path)
    validation = doc["components"]["schemas"]["ValidationErrorBody"]
    assert validation["properties"]["detail"]["type"] == "array"
    assert doc["paths"]["/rules"]["get"]["responses"]["404"]["description"] == "unknown device"
    assert doc["paths"]["/devices/{device}/data/{data_type}"]["get"]["responses"]["502"]["content"][
        "application/json"]["schema"]["$ref"].endswith("/RefreshError")


async def test_every_422_is_the_documented_validation_list(client, keys, device):
    admin = auth(keys["admin"])
    answers = [
        await client.post("/rules", json={"name": "l", "metric": "load", "selector": "7"}, headers=admin),
        await client.post("/rules", json={"name": "c", "metric": "cpu", "threshold": "huge"}, headers=admin),
        await client.patch("/devices/web-1", json={"enabled": None}, headers=admin),
        await client.post("/devices", content=b"{not json", headers={**admin, "Content-Type": "application/json"}),
        await client.post("/keys", content=b"\xff\xfe", headers={**admin, "Content-Type": "application/json"}),
    ]
    for r in answers:
        assert r.status_code == 422, r.text
        body = r.json()
        assert isinstance(body["detail"], list) and body["detail"][0]["loc"] and body["message"], r.text
    created = await client.post("/rules", json={"name": "ok", "metric": "cpu"}, headers=admin)
    assert created.status_code == 201
    r = await client.patch("/rules/ok", json={"threshold": None}, headers=admin)  # not nullable: the schema says so
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][:2] == ["body", "threshold"]


async def test_unknown_devices_of_rules_are_404(client, keys):
    viewer, admin = auth(keys["viewer"]), auth(keys["admin"])
    assert (await client.get("/rules", params={"device": "ghost"}, headers=viewer)).status_code == 404
    r = await client.post("/rules", json={"name": "g", "metric": "cpu", "device": "ghost"}, headers=admin)
    assert r.status_code == 404 and r.json()["detail"] == "device 'ghost' not found"


async def test_a_405_names_every_method_of_the_path_in_allow(client, keys, device):
    h = auth(keys["admin"])
    for path, methods in (("/devices", {"GET", "POST"}), ("/devices/web-1", {"GET", "PATCH", "DELETE"}),
                          ("/keys", {"GET", "POST"}), ("/rules/x", {"GET", "PATCH", "DELETE"})):
        r = await client.request("OPTIONS", path, headers=h)
        assert r.status_code == 405 and set(r.headers["allow"].split(", ")) == methods, (path, r.headers)
