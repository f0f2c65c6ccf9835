"""Host → collector → JetStream → writer → PostgreSQL → API, each service a real process."""

from __future__ import annotations

import asyncio
import json
import shutil

import httpx

from services.api.keys import create_api_key
from shared.names import Names
from shared.runtime.embedded import free_port
from tests.util import fetchval, start_service, wait_until


async def test_device_registered_through_the_api_has_metrics_within_seconds(settings, js, ssh_server, tmp_path):
    known_hosts = tmp_path / "known_hosts"
    shutil.copy(ssh_server.known_hosts, known_hosts)
    api_port = free_port()
    settings = settings.model_copy(update={"api_port": api_port})
    env = {
        "INFRAWATCH_SSH_CLIENT_KEYS": json.dumps([str(ssh_server.client_key)]),
        "INFRAWATCH_SSH_KNOWN_HOSTS": str(known_hosts),
        "INFRAWATCH_API_PORT": str(api_port),
    }
    key, _ = await create_api_key(settings.database_url, "admin", "e2e")
    procs = [await start_service(name, settings, tmp_path / f"{name}.log", env) for name in ("writer", "collector", "api")]
    base = f"http://127.0.0.1:{api_port}"
    headers = {"Authorization": f"Bearer {key}"}
    try:
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=10) as client:
            await wait_until(lambda: _ready(client), timeout=90, what="API ready")
            r = await client.post("/devices", json={
                "name": "sshbox", "address": ssh_server.host, "port": ssh_server.port,
                "username": ssh_server.username,
            })
            assert r.status_code == 201, r.text
            device_id = r.json()["id"]

            async def metrics():
                resp = await client.get("/devices/sshbox/metrics")
                return resp.json() if resp.status_code == 200 else None

            body = await wait_until(metrics, timeout=10, interval=0.2, what="metrics from the API")
            assert body["cpu_count"] >= 1 and body["memory_total_bytes"] > 0
            assert 0 <= body["cpu_percent"] <= 100

            names = Names(settings.subject_prefix)
            subject = names.collected("sshbox", "system_metrics")

            async def audit_matches_collections():
                info = await js.stream_info(names.stream_collected, subjects_filter=subject)
                collected = (info.state.subjects or {}).get(subject, 0)
                audited = await fetchval(settings.database_url,
                                         "SELECT count(*) FROM data_collection_audit WHERE device_id = $1::uuid "
                                         "AND data_type = 'system_metrics' AND collection_method IN ('ssh', 'local')",
                                         device_id)
                return collected >= 1 and audited == collected

            await wait_until(audit_matches_collections, timeout=15, what="one audit row per collection")
    finally:
        for p in procs:
            if p.returncode is None:
                p.terminate()
        await asyncio.gather(*(p.wait() for p in procs))


async def _ready(client: httpx.AsyncClient) -> bool:
    try:
        return (await client.get("/ready")).status_code == 200
    except httpx.TransportError:
        return False
