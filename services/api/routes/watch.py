"""What the watcher reports about a device: its watch mode, errors and counts."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, HTTPException
from nats.js.errors import KeyNotFoundError, NotFoundError

from services.api.deps import DeviceDep, JsDep, NamesDep, ViewerKey

router = APIRouter(tags=["config"])


@router.get("/devices/{device}/watch", responses={404: {"description": "unknown device, or not watched yet"}})
async def watch_status(_: ViewerKey, spec: DeviceDep, js: JsDep, names: NamesDep) -> dict[str, Any]:
    """The watcher's status for this device: watch mode (inotifywait, python, poll), files, scans, last error."""
    try:
        kv = await js.key_value(names.watch_state_bucket)
        entry = await kv.get(f"{spec.name}._status")
    except (KeyNotFoundError, NotFoundError):
        raise HTTPException(404, f"no watcher has reported on device {spec.name!r} yet") from None
    return json.loads(entry.value or b"{}")
