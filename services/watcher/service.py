"""The watcher service: one ``DeviceWatcher`` per enabled device of the registry that this
instance owns, each publishing ``ConfigChanged`` events on ``<prefix>.config.<device>.<config_type>``.
NATS only, no database.

Sharing. Instances heartbeat into the watch-state bucket (keys ``_watchers.<member>``,
``shared.runtime.membership``); each device is watched by the live instance with the highest rendezvous
hash, so N instances are not N times the SSH load. When an instance dies, its devices move to
the others, whose first scan compares with the hashes last published (kept in the same bucket):
a change made meanwhile is published once, and a change published but not yet recorded is
published again under the same event id, which JetStream de-duplicates.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from services.watcher.device import DeviceWatcher
from services.watcher.settings import WatcherSettings, watcher_settings
from services.watcher.state import MEMBERS_PREFIX, WatchState
from shared.events import DeviceChanged, DeviceSpec
from shared.names import Names
from shared.runtime.bootstrap import ensure
from shared.runtime.devices import DeviceRegistry
from shared.runtime.lifecycle import DeviceService
from shared.runtime.membership import Membership
from shared.runtime.nats_conn import connect, drain
from shared.runtime.perf import Perf, publish_loop, serve_metrics
from shared.settings import Settings

log = logging.getLogger(__name__)

SERVICE = "watcher"
STOP_WAIT_S = 10.0


@dataclass
class _Running:
    spec: DeviceSpec
    watcher: DeviceWatcher
    task: asyncio.Task


class Watcher:
    """Device watchers kept in step with the device registry."""

    def __init__(self, settings: WatcherSettings, js: JetStreamContext, kv: KeyValue,
                 membership: Membership | None = None) -> None:
        self.settings = settings
        self.js = js
        self.kv = kv
        self.specs: dict[uuid.UUID, DeviceSpec] = {}  # every enabled device of the registry
        self.devices: dict[uuid.UUID, _Running] = {}  # those this instance watches
        self.perf = Perf(SERVICE)
        self.membership = membership or Membership(None, settings.instance, settings.watcher_heartbeat_s,
                                                   settings.watcher_member_timeout_s, label=SERVICE)
        self.membership.on_change(self._members_changed)
        self._lock = asyncio.Lock()
        self._rebalancing: asyncio.Task | None = None
        self._again = False

    async def sample(self) -> None:
        """Bring the SSH counters of every device's transport into the perf counters."""
        for device_id, running in self.devices.items():
            t = running.watcher.transport
            for name in ("connections_created", "connections_reused", "commands_executed"):
                self.perf.observe_total(f"ssh_{name}", getattr(t, name, 0), device_id)
        self.perf.gauge("devices_watched", len(self.devices), "devices this instance watches")

    async def on_device_changed(self, ev: DeviceChanged) -> None:
        spec = ev.spec
        async with self._lock:
            if ev.action == "removed" or not spec.enabled:
                self.specs.pop(spec.id, None)
                if spec.id in self.devices:
                    await self._stop(spec.id)
                    log.info("device %s %s: no longer watched", spec.name, ev.action if ev.action == "removed"
                             else "disabled")
                return
            if spec.transport == "local" and spec.name not in self.settings.watcher_local_devices:
                # A device setting must not make the watcher read this host's files.
                log.warning("device %s refused: transport 'local' reads the watcher's own host, only for %r "
                            "(INFRAWATCH_WATCHER_LOCAL_DEVICES)", spec.name, self.settings.watcher_local_devices)
                self.specs.pop(spec.id, None)
                if spec.id in self.devices:
                    await self._stop(spec.id)
                return
            self.specs[spec.id] = spec
            await self._apply(spec)

    async def _apply(self, spec: DeviceSpec) -> None:
        """Watch ``spec`` if this instance owns it (again, if it changed); stop watching it otherwise."""
        current = self.devices.get(spec.id)
        if not self.membership.owns(spec.id):
            if current is not None:
                log.info("device %s: now watched by another instance", spec.name)
                await self._stop(spec.id)
            return
        if current is not None:
            if current.spec == spec:
                return
            await self._stop(spec.id)
        watcher = DeviceWatcher(spec, self.settings, self.js, WatchState(self.kv, spec.name), self.perf)
        task = asyncio.create_task(watcher.run(), name=f"watch-{spec.name}")
        self.devices[spec.id] = _Running(spec, watcher, task)

    def _members_changed(self, members: frozenset[str]) -> None:
        self._again = True
        if self._rebalancing is None or self._rebalancing.done():
            self._rebalancing = asyncio.create_task(self.rebalance(), name="watch-rebalance")

    async def rebalance(self) -> None:
        """Start and stop device watchers after the member set changed (until it stops changing)."""
        while self._again:
            self._again = False
            async with self._lock:
                for spec in list(self.specs.values()):
                    await self._apply(spec)

    async def _stop(self, device_id: uuid.UUID) -> None:
        running = self.devices.pop(device_id, None)
        if running is None:
            return
        running.task.cancel()
        done, _ = await asyncio.wait({running.task}, timeout=STOP_WAIT_S)
        if not done:  # it ends in the background; the next owner does not wait for it
            log.warning("device %s: its watch did not stop within %.0fs", running.spec.name, STOP_WAIT_S)

    async def close(self) -> None:
        if self._rebalancing is not None:
            self._rebalancing.cancel()
            await asyncio.gather(self._rebalancing, return_exceptions=True)
        for device_id in list(self.devices):
            await self._stop(device_id)


async def run(settings: Settings, stop: asyncio.Event) -> None:
    """Run the watcher until ``stop`` is set; the INFRAWATCH_WATCHER_* settings come from the environment."""
    ws = watcher_settings(settings)
    names = Names(ws.subject_prefix)
    nc = await connect(ws, SERVICE)
    parts = DeviceService()
    try:
        js = nc.jetstream()
        await ensure(js, ws)
        kv = await js.key_value(names.watch_state_bucket)
        membership = parts.membership = Membership(
            kv, ws.instance, ws.watcher_heartbeat_s, ws.watcher_member_timeout_s, prefix=MEMBERS_PREFIX,
            label=SERVICE, beats_per_interval=4, forget_dead=True)
        await membership.beat()  # know the others before the first watch: a second look lets the
        await asyncio.sleep(ws.watcher_heartbeat_s / 4)  # instances starting at the same time see each other
        await membership.beat()
        parts.heartbeat()
        watcher = parts.service = Watcher(ws, js, kv, membership)
        registry = parts.registry = DeviceRegistry(js, names)
        registry.on_change(watcher.on_device_changed)
        await registry.start()
        log.info("watcher %s running: %d of %d devices", membership.me, len(watcher.devices), len(watcher.specs))
        serve_metrics(watcher.perf, ws)
        await publish_loop(js, ws, watcher.perf, stop, watcher.sample)
    finally:
        await parts.stop()
        await drain(nc)
        log.info("watcher stopped")
