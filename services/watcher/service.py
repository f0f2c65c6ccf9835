"""The watcher service: one ``DeviceWatcher`` per enabled device of the registry, each publishing
``ConfigChanged`` events on ``<prefix>.config.<device>.<config_type>``. NATS only, no database."""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from services.watcher.device import DeviceWatcher
from services.watcher.settings import WatcherSettings, watcher_settings
from services.watcher.state import WatchState
from shared.bootstrap import ensure
from shared.devices import DeviceRegistry
from shared.events import DeviceChanged, DeviceSpec
from shared.names import Names
from shared.nats_conn import connect, drain
from shared.perf import Perf, publish_loop, serve_metrics
from shared.settings import Settings

log = logging.getLogger(__name__)

SERVICE = "watcher"


@dataclass
class _Running:
    spec: DeviceSpec
    watcher: DeviceWatcher
    task: asyncio.Task


class Watcher:
    """Device watchers kept in step with the device registry."""

    def __init__(self, settings: WatcherSettings, js: JetStreamContext, kv: KeyValue) -> None:
        self.settings = settings
        self.js = js
        self.kv = kv
        self.devices: dict[uuid.UUID, _Running] = {}
        self.perf = Perf(SERVICE)

    async def sample(self) -> None:
        """Bring the SSH counters of every device's transport into the perf counters."""
        for device_id, running in self.devices.items():
            t = running.watcher.transport
            for name in ("connections_created", "connections_reused", "commands_executed"):
                self.perf.observe_total(f"ssh_{name}", getattr(t, name, 0), device_id)
        self.perf.gauge("devices_watched", len(self.devices), "devices this instance watches")

    async def on_device_changed(self, ev: DeviceChanged) -> None:
        spec = ev.spec
        current = self.devices.get(spec.id)
        if ev.action == "removed" or not spec.enabled:
            if current is not None:
                await self._stop(spec.id)
                log.info("device %s %s: no longer watched", spec.name, ev.action if ev.action == "removed"
                         else "disabled")
            return
        if current is not None:
            if current.spec == spec:
                return
            await self._stop(spec.id)
        watcher = DeviceWatcher(spec, self.settings, self.js, WatchState(self.kv, spec.name), self.perf)
        task = asyncio.create_task(watcher.run(), name=f"watch-{spec.name}")
        self.devices[spec.id] = _Running(spec, watcher, task)

    async def _stop(self, device_id: uuid.UUID) -> None:
        running = self.devices.pop(device_id, None)
        if running is None:
            return
        running.task.cancel()
        await asyncio.gather(running.task, return_exceptions=True)

    async def close(self) -> None:
        for device_id in list(self.devices):
            await self._stop(device_id)


async def run(settings: Settings, stop: asyncio.Event) -> None:
    """Run the watcher until ``stop`` is set; the INFRAWATCH_WATCHER_* settings come from the environment."""
    ws = watcher_settings(settings)
    names = Names(ws.subject_prefix)
    nc = await connect(ws, SERVICE)
    watcher: Watcher | None = None
    registry: DeviceRegistry | None = None
    try:
        js = nc.jetstream()
        await ensure(js, ws)
        kv = await js.key_value(names.watch_state_bucket)
        watcher = Watcher(ws, js, kv)
        registry = DeviceRegistry(js, names)
        registry.on_change(watcher.on_device_changed)
        await registry.start()
        log.info("watcher running: %d devices", len(watcher.devices))
        serve_metrics(watcher.perf, ws)
        await publish_loop(js, ws, watcher.perf, stop, watcher.sample)
    finally:
        if registry is not None:
            await registry.stop()
        if watcher is not None:
            await watcher.close()
        await drain(nc)
        log.info("watcher stopped")
