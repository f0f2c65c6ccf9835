"""A compare between two simulated hosts shows their structured and unified differences: the real
watcher follows the hosts' files over SSH, the real writer stores them, the API compares them."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from services.api.keys import create_api_key
from services.api.main import create_app
from services.api.settings import ApiSettings
from services.simulator import Simulator
from services.simulator.hosts import FILES
from services.watcher.service import run as run_watcher
from services.watcher.settings import WatcherSettings
from services.writer.service import run as run_writer
from shared.names import Names
from tests.util import fetchval, wait_until

pytestmark = pytest.mark.ssh

COMPOSE = "docker-compose.yml"
WAIT_S = 60  # upper bound for the watcher and writer, not a performance assertion


async def _image(url: str, device_id: uuid.UUID, path: str) -> str | None:
    return await fetchval(url, "SELECT parsed #>> '{services,web,image}' FROM config_current "
                               "WHERE device_id = $1 AND file_path = $2", device_id, path)


async def test_compare_between_two_simulated_hosts(settings, js, tmp_path):
    (tmp_path / "empty-root").mkdir()
    async with Simulator(2, tmp_path / "sim") as sim:
        host1 = sim.host("host-1")
        wsettings = WatcherSettings(**{**settings.model_dump(), "watcher_root_prefix": str(tmp_path / "empty-root"),
                                       "ssh_client_keys": [sim.client_key], "ssh_known_hosts": sim.known_hosts})
        specs = {s.name: s for s in await sim.register(js, Names(settings.subject_prefix))}
        paths = {h.name: str(h.root / COMPOSE) for h in sim.hosts}
        stop = asyncio.Event()
        tasks = [asyncio.create_task(run_watcher(wsettings, stop)), asyncio.create_task(run_writer(settings, stop))]
        try:
            url = settings.database_url
            for h in sim.hosts:
                await wait_until(lambda h=h: _image(url, specs[h.name].id, paths[h.name]), timeout=WAIT_S,
                                 what=f"{h.name}'s compose file stored")
            host1.revision += 1  # host-1's compose file changes once more: nginx:1.25.0 -> nginx:1.25.1
            (host1.root / COMPOSE).write_text(FILES[COMPOSE](host1))

            async def changed() -> bool:
                return await _image(url, specs["host-1"].id, paths["host-1"]) == "nginx:1.25.1"

            await wait_until(changed, timeout=WAIT_S, what="host-1's change stored")
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks), 30)

        app = create_app(ApiSettings(**settings.model_dump()))
        key, _ = await create_api_key(settings.database_url, "viewer", "fleet-test")
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://api",
                headers={"Authorization": f"Bearer {key}"}) as client:
            await wait_until(lambda: app.state.registry.get("host-1"), what="the API knows the hosts")
            r = await client.get("/config/compare", params={
                "devices": f"host-0:{paths['host-0']},host-1:{paths['host-1']}"})
    assert r.status_code == 200, r.text
    res = r.json()
    assert (res["reference"]["device"], res["reference"]["path"]) == ("host-0", paths["host-0"])
    (c,) = res["comparisons"]
    assert c["version"]["device"] == "host-1" and c["identical"] is False
    assert {"path": "services.web.image", "op": "changed", "old": "nginx:1.25.0", "new": "nginx:1.25.1"} in c["structured"]
    assert "\n-    image: nginx:1.25.0\n" in c["unified_diff"] and "\n+    image: nginx:1.25.1\n" in c["unified_diff"]
    assert c["unified_diff"].startswith(f"--- host-0:{paths['host-0']}\t")
