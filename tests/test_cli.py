"""The `infrawatch` command against real NATS and PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
import json

import pytest
from typer.testing import CliRunner

from services.cli import app
from tests.api.conftest import api_settings, keys, live  # noqa: F401 (fixtures)
from tests.util import fetch

runner = CliRunner()


@pytest.fixture
def env(settings) -> dict[str, str]:
    return {
        "INFRAWATCH_NATS_URL": settings.nats_url,
        "INFRAWATCH_DATABASE_URL": settings.database_url,
        "INFRAWATCH_SUBJECT_PREFIX": settings.subject_prefix,
        "INFRAWATCH_LOG_LEVEL": "WARNING",
    }


def test_device_add_list_rm(env):
    r = runner.invoke(app, ["device", "add", "web-1", "--address", "10.1.2.3", "--username", "ops", "--tofu"], env=env)
    assert r.exit_code == 0, r.output
    assert "registered web-1" in r.output
    dup = runner.invoke(app, ["device", "add", "web-1"], env=env)
    assert dup.exit_code == 1 and "already exists" in dup.output
    listed = runner.invoke(app, ["device", "list", "--json"], env=env)
    devices = json.loads(listed.output)
    assert [(d["name"], d["address"], d["username"], d["trust_on_first_use"]) for d in devices] == [
        ("web-1", "10.1.2.3", "ops", True)]
    assert runner.invoke(app, ["device", "rm", "web-1"], env=env).exit_code == 0
    assert json.loads(runner.invoke(app, ["device", "list", "--json"], env=env).output) == []
    missing = runner.invoke(app, ["device", "rm", "web-1"], env=env)
    assert missing.exit_code == 1 and "not found" in missing.output


def test_device_add_refuses_a_name_that_is_not_a_subject_token(env):
    r = runner.invoke(app, ["device", "add", "web.1"], env=env)
    assert r.exit_code == 1 and "invalid device name" in r.output


async def test_apikey_create_prints_the_key_once_and_stores_only_its_hash(env, settings):
    r = await asyncio.to_thread(runner.invoke, app, ["apikey", "create", "--role", "admin", "--name", "ops"], env=env)
    assert r.exit_code == 0, r.output
    key = r.stdout.strip().splitlines()[0]
    rows = await fetch(settings.database_url, "SELECT prefix, key_hash, role FROM api_keys")
    assert len(rows) == 1 and rows[0]["role"] == "admin"
    assert rows[0]["key_hash"] == hashlib.sha256(key.encode()).hexdigest()
    assert key.startswith(f"iw_{rows[0]['prefix']}_") and key not in rows[0]["key_hash"]


def test_apikey_create_refuses_an_unknown_role(env):
    r = runner.invoke(app, ["apikey", "create", "--role", "root"], env=env)
    assert r.exit_code == 1 and "role must be" in r.output


def test_cli_says_plainly_when_nats_is_unreachable(env):
    r = runner.invoke(app, ["device", "list"], env={**env, "INFRAWATCH_NATS_URL": "nats://127.0.0.1:1"})
    assert r.exit_code == 1 and "cannot reach NATS" in r.output


async def test_status_lists_streams_consumers_devices_and_live_services(env, settings, js):
    from services.writer.service import run

    stop = asyncio.Event()
    task = asyncio.create_task(run(settings.model_copy(update={"perf_interval_s": 0.5}), stop))
    try:
        await asyncio.to_thread(runner.invoke, app, ["device", "add", "box1"], env=env)

        async def ready():
            r = await asyncio.to_thread(runner.invoke, app, ["status", "--json"], env=env)
            st = json.loads(r.stdout)
            writer = next(s for s in st["services"] if s["service"] == "writer")
            return st if writer["alive"] else None

        from tests.util import wait_until

        st = await wait_until(ready, timeout=30, what="the writer reported alive")
        assert {s["stream"] for s in st["streams"]} >= {f"{settings.subject_prefix.upper()}_COLLECTED"}
        assert any(c["consumer"] == settings.writer_durable and c["lag"] == 0 for c in st["consumers"])
        assert [d["device"] for d in st["devices"]] == ["box1"]
        assert next(s for s in st["services"] if s["service"] == "collector")["alive"] is False
        table = await asyncio.to_thread(runner.invoke, app, ["status"], env=env)
        assert table.exit_code == 0 and "consumers" in table.stdout and "box1" in table.stdout
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


@pytest.mark.parametrize("args, env_update, message", [
    (["migrate"], {"INFRAWATCH_DATABASE_URL": "mysql://db/x"}, "invalid settings: INFRAWATCH_DATABASE_URL"),
    (["migrate"], {"INFRAWATCH_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/x"}, "cannot reach the database"),
    (["apikey", "create"], {"INFRAWATCH_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/x"},
     "cannot reach the database"),
    (["status"], {"INFRAWATCH_NATS_URL": "nats://127.0.0.1:1"}, "cannot reach NATS"),
])
def test_errors_say_what_is_wrong(env, args, env_update, message):
    r = runner.invoke(app, args, env={**env, **env_update})
    assert r.exit_code == 1 and message in r.output, r.output


async def test_alerts_active_prints_the_firing_alerts_and_their_causes(env, settings, live, keys, tmp_path):
    from datetime import UTC, datetime

    import httpx

    from tests.api.conftest import auth, project
    from tests.api.test_alerts_active import NGINX, alert

    _, base = live
    async with httpx.AsyncClient(base_url=base, headers=auth(keys["admin"])) as http:
        device = (await http.post("/devices", json={"name": "web-1"})).json()
        rule = (await http.post("/rules", json={"name": "cpu-high", "metric": "cpu", "threshold": 90})).json()
    await project(settings.database_url, alert(rule, device, 0, causes=[NGINX]))
    viewer = {**env, "INFRAWATCH_API_URL": base, "INFRAWATCH_API_KEY": keys["viewer"]}
    r = await asyncio.to_thread(runner.invoke, app, ["alerts", "active"], env=viewer)
    assert r.exit_code == 0, r.output
    assert r.output.splitlines() == [
        "cpu-high on web-1: cpu 95 > 90 since 2026-03-01 12:00:00Z",
        f"  1. [config HIGH] {NGINX.summary} (2026-03-01 11:56:00Z)"]
    # beside `infrawatch up`: its API and key
    (tmp_path / "up.json").write_text(json.dumps({"api_url": base, "api_key": keys["viewer"]}))
    up = {**env, "INFRAWATCH_DATA_DIR": str(tmp_path)}
    r = await asyncio.to_thread(runner.invoke, app, ["alerts", "active", "--top", "0", "--device", "web-1"], env=up)
    assert r.exit_code == 0 and r.output.splitlines() == ["cpu-high on web-1: cpu 95 > 90 since 2026-03-01 12:00:00Z"]
    r = await asyncio.to_thread(runner.invoke, app, ["alerts", "active", "--json"], env=up)
    assert [a["rule_name"] for a in json.loads(r.output)] == ["cpu-high"]
    assert datetime.fromisoformat(json.loads(r.output)[0]["time"]) == datetime(2026, 3, 1, 12, tzinfo=UTC)
    refused = await asyncio.to_thread(runner.invoke, app, ["alerts", "active"], env={**up, "INFRAWATCH_API_KEY": "no"})
    assert refused.exit_code == 1 and "401" in refused.output
    alone = await asyncio.to_thread(runner.invoke, app, ["alerts", "active"],
                                    env={**env, "INFRAWATCH_DATA_DIR": str(tmp_path / "none")})
    assert alone.exit_code == 1 and "INFRAWATCH_API_URL" in alone.output
