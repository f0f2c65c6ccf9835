"""Property-based requests generated from the OpenAPI document get no unexpected 5xx."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import httpx

from services.api.keys import create_api_key
from tests.api.conftest import auth

HOOKS = Path(__file__).with_name("schemathesis_hooks.py")
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
MAX_EXAMPLES = 8


async def test_generated_requests_get_no_server_errors(live, settings, tmp_path):
    app, base = live
    key, _ = await create_api_key(settings.database_url, "admin", "schemathesis")
    async with httpx.AsyncClient(base_url=base) as client:  # a device, so some generated paths exist
        assert (await client.post("/devices", json={"name": "web-1"}, headers=auth(key))).status_code == 201
    proc = await asyncio.create_subprocess_exec(
        str(SCHEMATHESIS), "run", f"{base}/openapi.json",
        "--checks", "no_server_error", "--phases", "examples,coverage,fuzzing",
        "--max-examples", str(MAX_EXAMPLES), "--seed", "1", "--workers", "1", "--generation-database", "none",
        "--exclude-path", "/devices/{device}/events",  # a live stream never ends by itself: see test_stream
        "--request-timeout", "30", "--no-color", "--report-dir", str(tmp_path),
        "-H", f"Authorization: Bearer {key}",
        env={**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS)}, cwd=tmp_path,  # it writes .schemathesis/ there
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 240)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text[-6000:]
