"""The watcher's memory in the KV bucket ``Names.watch_state_bucket``: per device and file the
last published hash and metadata (key ``<device>.f.<sha256 of the path>``, since paths are not
valid keys), per device its status (key ``<device>._status``: watch mode, errors, counts), and
the instances' heartbeats (keys ``_watchers.<member>``; device names cannot start with ``_``)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from typing import Any

import msgspec
from nats.js.kv import KeyValue

from services.watcher.changes import Known

log = logging.getLogger(__name__)

_encode = msgspec.json.Encoder().encode
_decode_known = msgspec.json.Decoder(Known).decode
LOAD_TIMEOUT_S = 60
MEMBERS_PREFIX = "_watchers."


def file_key(device: str, path: str) -> str:
    return f"{device}.f.{hashlib.sha256(path.encode('utf-8', 'surrogateescape')).hexdigest()}"


def status_key(device: str) -> str:
    return f"{device}._status"


class WatchState:
    """Reads and writes one device's entries."""

    def __init__(self, kv: KeyValue, device: str) -> None:
        self.kv = kv
        self.device = device

    async def load(self, device_id: uuid.UUID) -> dict[str, Known]:
        """Every file known for this device (entries of an earlier device of the same name are dropped)."""
        known: dict[str, Known] = {}
        watcher = await self.kv.watch(f"{self.device}.f.*", ignore_deletes=True)
        try:
            async with asyncio.timeout(LOAD_TIMEOUT_S):
                async for entry in watcher:
                    if entry is None:
                        break
                    if not entry.value:
                        continue
                    try:
                        k = _decode_known(entry.value)
                    except msgspec.DecodeError:
                        log.warning("%s: unreadable watch state under %s, ignored", self.device, entry.key)
                        continue
                    if k.device_id == device_id:
                        known[k.path] = k
        finally:
            await watcher.stop()
        return known

    async def put(self, k: Known) -> None:
        await self.kv.put(file_key(self.device, k.path), _encode(msgspec.structs.replace(k, text=None, parsed=None)))

    async def delete(self, path: str) -> None:
        await self.kv.delete(file_key(self.device, path))

    async def status(self, status: dict[str, Any]) -> None:
        try:
            await self.kv.put(status_key(self.device), _encode(status))
        except Exception as exc:
            log.warning("%s: writing the watch status failed: %s", self.device, exc)
