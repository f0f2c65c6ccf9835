"""Which live instance of a service (collector, watcher) handles which device.

Each instance writes a heartbeat key (``<prefix><member>``) into a KV bucket every
``heartbeat_s`` (collectors: their own bucket ``infra_collectors``; watchers: keys
``_watchers.*`` of ``infra_watch_state``); an instance whose key has not changed for
``timeout_s`` (as seen by this instance's own clock, so clocks need not agree) is dead. An
instance may write (and recompute the live set) ``beats_per_interval`` times per heartbeat
interval, so that a busy event loop delaying one write does not make it look dead. A device belongs to the live
instance with the highest rendezvous hash of (instance, device id): every instance computes the
same owner from the same member set, and when one instance leaves only its own devices move.

A member dead for ``FORGET_AFTER`` timeouts has its key deleted (``forget_dead``) where the
bucket has no TTL to clear it. A bucket kept in memory by nats-server is deleted by a nats-server restart; the next heartbeat
then finds no stream and recreates the bucket (``reopen``) before writing again.
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

FORGET_AFTER = 10  # member timeouts after which a dead member's key is deleted (forget_dead)


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
                 reopen: Callable[[], Awaitable[KeyValue]] | None = None, *, prefix: str = "",
                 label: str = "collector", beats_per_interval: int = 1, forget_dead: bool = False) -> None:
        self.kv = kv
        self._reopen = reopen
        self.prefix = prefix
        self.label = label
        self.beats_per_interval = max(1, beats_per_interval)
        self.forget_dead = forget_dead  # delete a long-dead member's key (for buckets without a TTL)
        self.me = member_id(instance)
        self.instance = instance
        self.heartbeat_s = heartbeat_s
        self.timeout_s = timeout_s
        self.members: frozenset[str] = frozenset({self.me})
        self._seen: dict[str, tuple[int, float]] = {}  # member -> (revision, when it last changed)
        self._listeners: list[Callable[[frozenset[str]], None]] = []
        self._beats = 0
        self._following: asyncio.Task[None] | None = None

    def on_change(self, listener: Callable[[frozenset[str]], None]) -> None:
        self._listeners.append(listener)

    def owns(self, device_id: uuid.UUID) -> bool:
        return owner(self.members, device_id) == self.me

    async def beat(self) -> None:
        """Write this instance's heartbeat and recompute the live members."""
        if self.kv is None:
            return
        self._beats += 1
        beat = json.dumps({"instance": self.instance, "beat": self._beats}).encode()
        key = self.prefix + self.me
        try:
            await self.kv.put(key, beat)
        except NoStreamResponseError:
            if self._reopen is None:
                raise
            log.warning("the %s instances bucket is gone (nats-server restarted?): recreating it", self.label)
            self.kv = await self._reopen()
            await self.kv.put(key, beat)
        await self.check()

    async def check(self) -> None:
        """Recompute the live members from the heartbeat keys."""
        if self.kv is None:
            return
        now = asyncio.get_running_loop().time()
        if self.prefix:
            await self._follow()
        else:
            await self._list(now)
        live = frozenset({k for k, (_, t) in self._seen.items() if now - t < self.timeout_s} | {self.me})
        if self.forget_dead:
            for key in [k for k, (_, t) in self._seen.items() if now - t >= FORGET_AFTER * self.timeout_s]:
                try:  # only the revision found dead: a member that beat meanwhile keeps its key
                    await self.kv.delete(self.prefix + key, last=self._seen[key][0])
                except Exception as exc:
                    log.debug("forgetting %s: %s", key, exc)
        if live != self.members:
            log.info("%s instances: %s (this one: %s)", self.label, ", ".join(sorted(live)), self.me)
            self.members = live
            for listener in self._listeners:
                listener(live)

    async def _follow(self) -> None:
        """Keys under a prefix of a shared bucket are followed by one KV watch (a listing would
        read the whole bucket): ``_seen`` is kept as heartbeats arrive."""
        if self._following is not None:
            if not self._following.done():
                return
            if not self._following.cancelled() and self._following.exception() is not None:
                log.warning("following the %s heartbeats failed: %s; again", self.label, self._following.exception())
        ready = asyncio.Event()
        self._following = asyncio.create_task(self._updates(ready), name=f"{self.label}-members")
        try:
            async with asyncio.timeout(self.heartbeat_s * 4):
                await ready.wait()  # the current keys are known
        except TimeoutError:
            log.warning("the %s heartbeats were not all read within %.0fs", self.label, self.heartbeat_s * 4)

    async def _updates(self, ready: asyncio.Event) -> None:
        assert self.kv is not None
        watch = await self.kv.watch(self.prefix + "*")
        loop = asyncio.get_running_loop()
        try:
            async for entry in watch:
                if entry is None:
                    ready.set()
                    continue
                key = entry.key[len(self.prefix):]
                if entry.operation in ("DEL", "PURGE"):
                    self._seen.pop(key, None)
                elif self._seen.get(key, (None,))[0] != entry.revision:
                    self._seen[key] = (entry.revision or 0, loop.time())
                if entry.delta == 0:
                    ready.set()
        finally:
            ready.set()
            await watch.stop()

    async def _list(self, now: float) -> None:
        assert self.kv is not None
        try:
            keys = set(await self.kv.keys())
        except NoKeysError:
            keys = set()
        # The listing can miss a key rewritten while it is taken (a heartbeat at that moment), so
        # members seen before are read directly: only a deleted key means that a member left.
        for key in keys | set(self._seen):
            try:
                entry = await self.kv.get(self.prefix + key)
            except KeyNotFoundError:
                self._seen.pop(key, None)
                continue
            rev = entry.revision or 0
            seen = self._seen.get(key)
            if seen is None or seen[0] != rev:
                self._seen[key] = (rev, now)

    async def run(self, stop: asyncio.Event) -> None:
        """Heartbeat until ``stop``; a failed beat is logged and retried at the next one."""
        while not stop.is_set():
            try:
                await self.beat()
            except Exception as exc:
                log.warning("%s heartbeat failed: %s", self.label, exc)
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.heartbeat_s / self.beats_per_interval)
            except TimeoutError:
                pass

    async def leave(self) -> None:
        """Delete this instance's key so the others take its devices at their next beat."""
        if self._following is not None:
            self._following.cancel()
            await asyncio.gather(self._following, return_exceptions=True)
        if self.kv is None:
            return
        try:
            await self.kv.delete(self.prefix + self.me)
        except Exception as exc:
            log.debug("leaving the member set: %s", exc)
