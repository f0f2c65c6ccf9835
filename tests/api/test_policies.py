"""Config policies through the API against the real PostgreSQL and NATS: validation, roles, the built-in
pack's seeding, and evaluation on demand as a NATS request to the evaluator."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from services.api import policy_seed
from services.api.routes import policies
from services.api.schemas_policies import PolicyCreate
from services.policy.pack import PACK as DEFAULT_PACK
from shared.names import Names
from tests.api.conftest import auth
from tests.util import fetchval, wait_until

NGINX = {"name": "no-autoindex", "config_type": "proxy_configs", "jsonpath": '$.** ? (@.directive == "autoindex")',
         "severity": "high", "message": "directory listing is on"}


@dataclass(frozen=True)
class Spec:
    """A stand-in for the default pack's entries (services.policy.pack.PolicySpec)."""

    name: str
    config_type: str
    jsonpath: str
    severity: str
    message: str
    description: str | None = None


PACK = [Spec("test-privileged", "docker_compose", "$.services.* ? (@.privileged == true)", "critical",
             "a privileged container", "privileged: true"),
        Spec("test-root", "systemd_units", '$.Service.User ? (@ == "root")', "medium", "runs as root")]


async def test_policies_are_created_read_changed_and_deleted(client, keys, device, settings):
    admin, viewer = auth(keys["admin"]), auth(keys["viewer"])
    body = {**NGINX, "device": "web-1", "tags": {"env": "prod"}, "description": "autoindex lists files",
            "webhook_url": "https://hooks.example.com/services/T0/B0/s3cr3t", "webhook_format": "slack"}
    r = await client.post("/config/policies", json=body, headers=admin)
    assert r.status_code == 201, r.text
    created = r.json()
    assert (created["device_id"], created["device"], created["enabled"], created["builtin"], created["tags"]) == \
           (device["id"], "web-1", True, False, {"env": "prod"})
    assert created["webhook_url"] == body["webhook_url"]
    assert await fetchval(settings.database_url,
                          "SELECT jsonpath FROM config_policies WHERE name = 'no-autoindex'") == NGINX["jsonpath"]

    seen = (await client.get(f"/config/policies/{created['id']}", headers=viewer)).json()
    assert seen["webhook_url"] == "https://hooks.example.com/…"  # a viewer never sees the token
    assert (await client.get("/config/policies/no-autoindex", headers=viewer)).json()["id"] == created["id"]
    assert (await client.post("/config/policies", json=NGINX, headers=admin)).status_code == 409
    other = await client.post("/config/policies", json={**NGINX, "name": "compose-any", "config_type": "docker_compose",
                                                          "jsonpath": "$.services", "enabled": False}, headers=admin)
    assert other.status_code == 201, other.text
    names = lambda r: [p["name"] for p in r.json()]  # noqa: E731
    assert {"compose-any", "no-autoindex"} < set(names(await client.get("/config/policies", headers=viewer)))
    assert {p["config_type"] for p in (await client.get("/config/policies?config_type=proxy_configs",
                                                         headers=viewer)).json()} == {"proxy_configs"}
    assert names(await client.get("/config/policies?enabled=false", headers=viewer)) == ["compose-any"]
    assert names(await client.get("/config/policies?builtin=false", headers=viewer)) == ["compose-any", "no-autoindex"]

    r = await client.patch("/config/policies/no-autoindex", json={"severity": "critical", "device": None,
                                                                  "jsonpath": "$.x"}, headers=admin)
    assert r.status_code == 200, r.text
    changed = r.json()
    assert (changed["severity"], changed["device_id"], changed["jsonpath"], changed["tags"]) == \
           ("critical", None, "$.x", {"env": "prod"})
    assert changed["updated_at"] > created["updated_at"] and changed["created_at"] == created["created_at"]
    assert (await client.delete("/config/policies/no-autoindex", headers=admin)).status_code == 204
    assert (await client.get("/config/policies/no-autoindex", headers=viewer)).status_code == 404
    assert (await client.delete("/config/policies/no-autoindex", headers=admin)).status_code == 404


@pytest.mark.parametrize(("change", "field"), [
    ({"name": "a.b"}, "name"), ({"name": "x" * 64}, "name"), ({"config_type": "nope"}, "config_type"),
    ({"jsonpath": "$." + "a" * 1000}, "jsonpath"), ({"jsonpath": ""}, "jsonpath"), ({"severity": "urgent"}, "severity"),
    ({"message": "m" * 501}, "message"), ({"message": "a\x00b"}, "message"), ({"tags": {"env": 1}}, "tags"),
    ({"tags": {f"k{i}": "v" for i in range(33)}}, "tags"), ({"webhook_url": "ftp://x"}, "webhook_url"),
    ({"webhook_url": "http://a\x00b/"}, "webhook_url"),
    ({"webhook_url": "http://127.0.0.1:9/hook"}, "webhook_url"), ({"webhook_format": "xml"}, "webhook_format"),
    ({"device": "not a name"}, "device"), ({"builtin": True}, "builtin"),
])
async def test_an_invalid_policy_is_a_422_naming_its_field(client, keys, change, field):
    r = await client.post("/config/policies", json={**NGINX, **change}, headers=auth(keys["admin"]))
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"][:2] == ["body", field], r.text


async def test_postgresql_judges_the_jsonpath_and_its_message_is_the_answer(client, keys, settings):
    admin = auth(keys["admin"])
    r = await client.post("/config/policies", json={**NGINX, "jsonpath": "$.a ? (@ =="}, headers=admin)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["body", "jsonpath"] and "syntax error" in r.json()["message"]
    assert await fetchval(settings.database_url, "SELECT count(*) FROM config_policies WHERE NOT builtin") == 0
    assert (await client.post("/config/policies", json=NGINX, headers=admin)).status_code == 201
    r = await client.patch("/config/policies/no-autoindex", json={"jsonpath": "lax strict $"}, headers=admin)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "jsonpath"], r.text
    r = await client.patch("/config/policies/no-autoindex", json={"enabled": None}, headers=admin)  # not nullable
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][:2] == ["body", "enabled"]
    r = await client.post("/config/policies", json={**NGINX, "name": "other", "device": "ghost"}, headers=admin)
    assert r.status_code == 404 and "ghost" in r.json()["detail"]


async def test_viewers_read_and_only_admins_write(client, keys):
    assert (await client.get("/config/policies")).status_code == 401
    assert (await client.get("/config/violations")).status_code == 401
    for role in ("viewer", "operator"):
        h = auth(keys[role])
        assert (await client.get("/config/policies", headers=h)).status_code == 200
        assert (await client.post("/config/policies", json=NGINX, headers=h)).status_code == 403
        assert (await client.post("/config/policies/evaluate", headers=h)).status_code == 403
    admin = auth(keys["admin"])
    assert (await client.post("/config/policies", json=NGINX, headers=admin)).status_code == 201
    h = auth(keys["viewer"])
    assert (await client.patch("/config/policies/no-autoindex", json={"enabled": False}, headers=h)).status_code == 403
    assert (await client.delete("/config/policies/no-autoindex", headers=h)).status_code == 403
    assert (await client.get("/config/policies/no-autoindex", headers=h)).json()["enabled"] is True


async def test_the_pack_is_seeded_once_and_admin_changes_stick(client, keys, settings):
    engine = create_async_engine(settings.sqlalchemy_url)
    try:
        assert await policy_seed.seed(engine, PACK) == 2
        admin = auth(keys["admin"])
        builtin = (await client.get("/config/policies?builtin=true", headers=admin)).json()
        assert [(p["name"], p["id"], p["enabled"]) for p in builtin if p["name"].startswith("test-")] == [
            ("test-privileged", str(policy_seed.policy_id("test-privileged")), True),
            ("test-root", str(policy_seed.policy_id("test-root")), True)]
        r = await client.delete("/config/policies/test-privileged", headers=admin)
        assert r.status_code == 409 and r.json()["detail"] == "a built-in policy can be disabled, not deleted"
        r = await client.patch("/config/policies/test-privileged", json={"enabled": False, "severity": "low"},
                               headers=admin)
        assert r.status_code == 200 and r.json()["builtin"] is True

        # Started again (and by several instances at once), the seed inserts nothing and changes nothing.
        other = create_async_engine(settings.sqlalchemy_url)
        try:
            assert await asyncio.gather(*(policy_seed.seed(e, PACK) for e in (engine, other, engine))) == [0, 0, 0]
        finally:
            await other.dispose()
        after = (await client.get("/config/policies/test-privileged", headers=admin)).json()
        assert (after["enabled"], after["severity"]) == (False, "low")
        assert await fetchval(settings.database_url, "SELECT count(*) FROM config_policies WHERE name LIKE 'test-%'") == 2
    finally:
        await engine.dispose()


async def test_the_api_adds_the_default_pack_at_start_and_each_entry_is_a_valid_policy(client, keys, settings):
    viewer = auth(keys["viewer"])
    builtin = {p["name"]: p for p in (await client.get("/config/policies?builtin=true", headers=viewer)).json()}
    assert set(builtin) == {p.name for p in DEFAULT_PACK}
    for spec in DEFAULT_PACK:
        row = builtin[spec.name]
        assert (row["id"], row["jsonpath"], row["enabled"], row["device_id"], row["tags"]) == \
               (str(policy_seed.policy_id(spec.name)), spec.jsonpath, True, None, {})
        PolicyCreate.model_validate({f: getattr(spec, f) for f in ("name", "config_type", "jsonpath", "severity",
                                                                   "message", "description")})
    # A second start adds nothing and keeps an admin's disable.
    r = await client.patch("/config/policies/nginx-autoindex", json={"enabled": False}, headers=auth(keys["admin"]))
    assert r.status_code == 200, r.text
    engine = create_async_engine(settings.sqlalchemy_url)
    try:
        assert await policy_seed.start(engine, policy_seed.default_pack()) is None
    finally:
        await engine.dispose()
    assert (await client.get("/config/policies/nginx-autoindex", headers=viewer)).json()["enabled"] is False
    assert await fetchval(settings.database_url, "SELECT count(*) FROM config_policies") == len(DEFAULT_PACK)


async def test_concurrent_first_seeds_insert_each_policy_once(settings):
    engines = [create_async_engine(settings.sqlalchemy_url) for _ in range(3)]
    try:
        inserted = await asyncio.gather(*(policy_seed.seed(e, PACK) for e in engines))
        assert sum(inserted) == 2
        assert await fetchval(settings.database_url, "SELECT count(*) FROM config_policies WHERE builtin") == 2
    finally:
        for e in engines:
            await e.dispose()


async def test_a_seed_that_cannot_reach_the_database_keeps_trying(settings):
    unreachable = create_async_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none")
    task = asyncio.create_task(policy_seed.seed_until_done(unreachable, PACK, retry_s=0.05))
    try:
        await asyncio.sleep(0.3)
        assert not task.done()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await unreachable.dispose()


async def _responder(nc, settings, answer: bytes | None, seen: list):
    """A stand-in evaluator on the evaluate subject: records each request, answers ``answer`` (None: never)."""
    async def handle(msg):
        seen.append(json.loads(msg.data))
        if answer is not None:
            await msg.respond(answer)

    return await nc.subscribe(Names(settings.subject_prefix).policy_evaluate, cb=handle)


async def test_evaluate_is_a_nats_request_to_the_evaluator(client, keys, nc, settings):
    admin, seen = auth(keys["admin"]), []
    result = {"files": 12, "opened": 2, "resolved": 1, "open": 5}
    sub = await _responder(nc, settings, json.dumps(result).encode(), seen)
    await nc.flush()
    policy_id = str(uuid.uuid4())
    r = await client.post("/config/policies/evaluate", json={"policy_id": policy_id}, headers=admin)
    assert r.status_code == 200 and r.json() == result, r.text
    r = await client.post("/config/policies/evaluate", headers=admin)
    assert r.status_code == 200 and r.json() == result, r.text
    assert seen == [{"policy_id": policy_id}, {"policy_id": None}]
    await sub.unsubscribe()

    sub = await _responder(nc, settings, json.dumps({"error": "unknown policy"}).encode(), seen)
    await nc.flush()
    r = await client.post("/config/policies/evaluate", json={"policy_id": policy_id}, headers=admin)
    assert r.status_code == 502 and r.json()["detail"] == "policy evaluation failed: unknown policy"
    await sub.unsubscribe()
    r = await client.post("/config/policies/evaluate", json={"policy_id": "nope"}, headers=admin)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][:2] == ["body", "policy_id"]


async def test_evaluate_without_an_evaluator_is_a_503(client, keys, nc, settings, monkeypatch):
    admin = auth(keys["admin"])
    r = await client.post("/config/policies/evaluate", headers=admin)  # nobody subscribed: no responders
    assert r.status_code == 503 and r.json()["detail"] == "no policy evaluator answered"
    monkeypatch.setattr(policies, "EVALUATE_TIMEOUT_S", 1.0)
    seen: list = []
    sub = await _responder(nc, settings, None, seen)  # subscribed, but never answers
    await nc.flush()
    try:
        r = await client.post("/config/policies/evaluate", json={}, headers=admin)
        assert r.status_code == 503 and r.json()["detail"] == "no policy evaluator answered"
        await wait_until(lambda: seen == [{"policy_id": None}])  # it was asked (its callback may run later)
    finally:
        await sub.unsubscribe()
