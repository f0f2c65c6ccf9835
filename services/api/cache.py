"""An in-process mirror of the KV cache bucket, so a cached read makes no network round trip."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter

from nats.js import JetStreamContext
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

from shared import events
from shared.events import AnyEvent, Collected
from shared.names import Names

log = logging.getLogger(__name__)


class CacheMirror:
    """Latest decoded event per key of a KV bucket, kept current by a watch over all keys."""

    def __init__(self, js: JetStreamContext, bucket: str) -> None:
        self._js = js
        self.bucket = bucket
        self.entries: dict[str, AnyEvent] = {}
        self._watcher: KeyValue.KeyWatcher | None = None
        self._task: asyncio.Task | None = None
        self._synced = asyncio.Event()
        self.hits: Counter[str] = Counter()  # per data type, this process only
        self.misses: Counter[str] = Counter()

    def get(self, key: str) -> AnyEvent | None:
        return self.entries.get(key)

    def collected(self, device: str, device_id: uuid.UUID, data_type: str) -> Collected | None:
        """The cached collection of this device (same id, not an earlier device of that name) and type."""
        ev = self.entries.get(Names.cache_key(device, data_type))
        if isinstance(ev, Collected) and ev.data_type == data_type and ev.device_id == device_id:
            return ev
        return None

    def count(self, data_type: str, hit: bool) -> None:
        (self.hits if hit else self.misses)[data_type] += 1

    async def start(self, timeout: float = 30) -> None:
        """Start watching; returns once the bucket's current values are loaded."""
        kv = await self._js.key_value(self.bucket)
        self._watcher = await kv.watchall()
        self._task = asyncio.create_task(self._run(), name=f"cache-mirror-{self.bucket}")
        await asyncio.wait_for(self._synced.wait(), timeout)

    def apply(self, key: str, operation: str | None, value: bytes | None) -> None:
        """Apply one KV update: a put stores the decoded event, a delete or purge drops the key."""
        if operation in (KV_DEL, KV_PURGE):
            self.entries.pop(key, None)
            return
        try:
            self.entries[key] = events.decode(value or b"")
        except Exception as exc:
            self.entries.pop(key, None)
            log.warning("cache key %s holds an undecodable value: %s", key, exc)

    async def _run(self) -> None:
        assert self._watcher is not None
        async for entry in self._watcher:
            if entry is None:  # the initial values have all been delivered
                self._synced.set()
                continue
            self.apply(entry.key, entry.operation, entry.value)

    async def stop(self) -> None:
        if self._watcher is not None:
            try:
                await self._watcher.stop()
            except Exception as exc:  # the connection may already be closed
                log.debug("cache watch stop: %s", exc)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
