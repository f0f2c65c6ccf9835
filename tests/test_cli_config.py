"""`infrawatch config search|compare|drift` against a real API over real NATS and PostgreSQL."""

from __future__ import annotations

import asyncio
import json

import httpx
from typer.testing import CliRunner

from services.cli import app
from tests.api.conftest import api_settings, keys, live  # noqa: F401 (fixtures)
from tests.api.fleet_fixtures import COMPOSE, NGINX, change, compose, nginx, register, store

runner = CliRunner()


async def test_config_search_compare_and_drift(settings, live, keys, tmp_path):
    _, base = live
    async with httpx.AsyncClient(base_url=base) as http:
        devs = await register(http, keys, "web-1", "web-2")
    w1, w2 = devs["web-1"], devs["web-2"]
    await store(settings, change(w1, 0, COMPOSE, compose("nginx:1.25.1", privileged=True)),
                change(w2, 0, COMPOSE, compose("nginx:1.25.0")), change(w2, 1, NGINX, nginx(80)))
    env = {"INFRAWATCH_API_URL": base, "INFRAWATCH_API_KEY": keys["viewer"], "INFRAWATCH_DATA_DIR": str(tmp_path),
           "INFRAWATCH_LOG_LEVEL": "WARNING"}

    async def cli(*args: str):
        return await asyncio.to_thread(runner.invoke, app, ["config", *args], env=env)

    r = await cli("search", "--jsonpath", "$.services.*.image", "--type", "docker_compose")
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert sorted(lines) == [f'web-1 {COMPOSE} ["nginx:1.25.1","redis:7"]', f'web-2 {COMPOSE} ["nginx:1.25.0","redis:7"]']
    r = await cli("search", "--jsonpath", "$.services.* ? (@.privileged == true)", "--device", "web-1,web-2", "--json")
    assert [(h["device"], h["match_count"]) for h in json.loads(r.output)] == [("web-1", 1)]
    r = await cli("search", "--path", "/etc/*")
    assert r.output.splitlines() == [f"web-2 {NGINX}"]
    r = await cli("search", "--jsonpath", "$.[")
    assert r.exit_code == 1 and "422" in r.output and "jsonpath" in r.output

    r = await cli("compare", COMPOSE, "--devices", "web-2,web-1")
    assert r.exit_code == 0, r.output
    assert "web-1: differs" in r.output and '  changed services.web.image: "nginx:1.25.0" -> "nginx:1.25.1"' in r.output
    assert "\n  -    image: nginx:1.25.0\n" in r.output and "\n  +    image: nginx:1.25.1\n" in r.output

    r = await cli("drift", "--type", "docker_compose")
    assert r.exit_code == 0, r.output
    assert r.output.splitlines() in ([f"DRIFT {COMPOSE} (2 devices): web-1 | web-2"],
                                     [f"DRIFT {COMPOSE} (2 devices): web-2 | web-1"]), r.output
    refused = await asyncio.to_thread(runner.invoke, app, ["config", "search"], env={**env, "INFRAWATCH_API_KEY": "no"})
    assert refused.exit_code == 1 and "401" in refused.output
