"""Which live collector instance polls which device.

Each instance writes a heartbeat key into the KV bucket ``infra_collectors`` every
``collector_heartbeat_s``; an instance whose key has not changed for
``collector_member_timeout_s`` (as seen by this instance's own clock, so clocks need not agree)
is dead. A device belongs to the live instance with the highest rendezvous hash of
(instance, device id): every instance computes the same owner from the same member set, and
when one instance leaves only its own devices move.

The bucket is kept in memory by nats-server, so a nats-server restart deletes it; the next
heartbeat then finds no stream and recreates the bucket (``reopen``) before writing again.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable

from nats.js.errors import KeyNotFoundError, NoKeysError, NoStreamResponseError
from nats.js.kv import KeyValue

log = logging.getLogger(__name__)


def weight(member: str, device_id: uuid.UUID) -> int:
    digest = hashlib.blake2b(f"{member}/{device_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def owner(members: set[str] | frozenset[str], device_id: uuid.UUID) -> str | None:
    """The member that polls ``device_id`` (pure): highest random weight."""
    return max(members, key=lambda m: (weight(m, device_id), m)) if members else None


def member_id(instance: str) -> str:
    """A KV-safe, unique name for this process (two processes may share an instance name)."""
    return f"{re.sub(r'[^A-Za-z0-9_=-]', '_', instance)}-{uuid.uuid4().hex[:8]}"


class Membership:
    """The live member set, kept by heartbeats; ``owns(device_id)`` answers for this instance."""

    def __init__(self, kv: KeyValue | None, instance: str, heartbeat_s: float, timeout_s: float,
                 reopen: Callable[[], Awaitable[KeyValue]] | None = None) -> None:
        self.kv = kv
        self._reopen = reopen
        self.me = member_id(instance)
        self.instance = instance
        self.heartbeat_s = heartbeat_s
        self.timeout_s = timeout_s
        self.members: frozenset[str] = frozenset({self.me})
        self._seen: dict[str, tuple[int, float]] = {}  # member -> (revision, when it last changed)
        self._listeners: list[Callable[[frozenset[str]], None]] = []
        self._beats = 0

    def on_change(self, listener: Callable[[frozenset[str]], None]) -> None:
        self._listeners.append(listener)

    def owns(self, device_id: uuid.UUID) -> bool:
        return owner(self.members, device_id) == self.me

    async def beat(self) -> None:
        """Write this instance's heartbeat and recompute the live members."""
        if self.kv is None:
            return
        loop = asyncio.get_running_loop()
        self._beats += 1
        beat = json.dumps({"instance": self.instance, "beat": self._beats}).encode()
        try:
            await self.kv.put(self.me, beat)
        except NoStreamResponseError:
            if self._reopen is None:
                raise
            log.warning("the collector instances bucket is gone (nats-server restarted?): recreating it")
            self.kv = await self._reopen()
            await self.kv.put(self.me, beat)
        try:
            keys = set(await self.kv.keys())
        except NoKeysError:
            keys = set()
        now = loop.time()
        # The listing can miss a key rewritten while it is taken (a heartbeat at that moment), so
        # members seen before are read directly: only a deleted key means that a member left.
        for key in keys | set(self._seen):
            try:
                entry = await self.kv.get(key)
            except KeyNotFoundError:
                self._seen.pop(key, None)
                continue
            rev = entry.revision or 0
            seen = self._seen.get(key)
            if seen is None or seen[0] != rev:
                self._seen[key] = (rev, now)
        live = frozenset({k for k, (_, t) in self._seen.items() if now - t < self.timeout_s} | {self.me})
        if live != self.members:
            log.info("collector instances: %s (this one: %s)", ", ".join(sorted(live)), self.me)
            self.members = live
            for listener in self._listeners:
                listener(live)

    async def run(self, stop: asyncio.Event) -> None:
        """Heartbeat until ``stop``; a failed beat is logged and retried at the next one."""
        while not stop.is_set():
            try:
                await self.beat()
            except Exception as exc:
                log.warning("collector heartbeat failed: %s", exc)
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.heartbeat_s)
            except TimeoutError:
                pass

    async def leave(self) -> None:
        """Delete this instance's key so the others take its devices at their next beat."""
        if self.kv is None:
            return
        try:
            await self.kv.delete(self.me)
        except Exception as exc:
            log.debug("leaving the member set: %s", exc)
