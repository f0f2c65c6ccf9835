"""INFRAWATCH_API_WORKERS: `infrawatch api` as several uvicorn worker processes, each with its own mirrors."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from datetime import datetime, timezone
from pathlib import Path

import httpx
import psutil

from shared import events
from shared.collected import COLLECTED_TYPES
from shared.names import Names
from shared.runtime.embedded import free_port
from tests.api.conftest import PAYLOAD, auth

ROOT = Path(__file__).resolve().parents[2]


def _workers(pid: int) -> list[psutil.Process]:
    return [p for p in psutil.Process(pid).children() if "spawn_main" in " ".join(p.cmdline())]


async def test_two_workers_serve_cached_reads_from_their_own_mirrors(settings, js, keys, tmp_path):
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "INFRAWATCH_NATS_URL": settings.nats_url,
           "INFRAWATCH_DATABASE_URL": settings.database_url, "INFRAWATCH_SUBJECT_PREFIX": settings.subject_prefix,
           "INFRAWATCH_DATA_DIR": str(tmp_path), "INFRAWATCH_API_PORT": str(port), "INFRAWATCH_API_WORKERS": "2",
           "INFRAWATCH_LOG_LEVEL": "WARNING", "INFRAWATCH_METRICS_PORT": "-1",
           "INFRAWATCH_API_REFRESH_TIMEOUT_S": "1"}
    env.pop("INFRAWATCH_INSTANCE", None)
    log = tmp_path / "api.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "services.cli", "api"], env=env, cwd=ROOT, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    fresh = httpx.Limits(max_keepalive_connections=0)  # a new connection per request, for any worker to take
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=fresh, timeout=30) as client:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 90
            ready = 0
            while ready < 10:  # both workers started: ten answers in a row
                assert proc.poll() is None, log.read_text()
                assert loop.time() < deadline, log.read_text()
                try:
                    ready = ready + 1 if (await client.get("/ready")).status_code == 200 else 0
                except httpx.TransportError:
                    ready = 0
                    await asyncio.sleep(0.2)
            assert len(_workers(proc.pid)) == 2
            r = await client.post("/devices", json={"name": "web-1", "address": "10.0.0.5"},
                                  headers=auth(keys["admin"]))
            assert r.status_code == 201, r.text
            ev = events.new_event(
                COLLECTED_TYPES["system_metrics"], device_id=uuid.UUID(r.json()["id"]), device="web-1", service="collector",
                instance="c1", trigger="poll", payload=PAYLOAD, occurred_at=datetime.now(timezone.utc),
            )
            kv = await js.key_value(Names(settings.subject_prefix).cache_bucket)
            await kv.put(Names.cache_key("web-1", "system_metrics"), events.encode(ev))
            in_a_row = 0
            while in_a_row < 40:  # from the cache, whichever worker takes the connection
                assert loop.time() < deadline, log.read_text()
                r = await client.get("/devices/web-1/data/system_metrics", headers=auth(keys["viewer"]))
                if r.status_code == 200:
                    assert r.json()["event_id"] == str(ev.event_id) and r.json()["source"] == "cache"
                    in_a_row += 1
                else:  # a worker whose mirror has not caught up yet asks for a refresh, which times out
                    assert r.status_code == 504, r.text
                    in_a_row = 0
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)
