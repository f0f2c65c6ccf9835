"""The collector service: polls every enabled device for every data type, answers refresh
requests, publishes each collection and caches the successful ones.

Polls skip a device/type whose cached value is younger than ``min(freshness, interval)``
(say, from a refresh a second ago, or from another collector instance) and come back when
it turns stale. Refresh requests (core NATS, queue group ``collector``) always collect.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from dataclasses import dataclass, field

from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from services.collector.registry import DATA_TYPES
from services.collector.runner import SERVICE, collect, freshness_s
from shared import events
from shared.bootstrap import ensure
from shared.devices import DeviceRegistry
from shared.events import Audited, Collected, DeviceChanged, DeviceSpec, RefreshRequested, Trigger
from shared.names import Names
from shared.nats_conn import connect
from shared.publish import publish_event
from shared.settings import Settings
from shared.transport import Transport, make_transport

log = logging.getLogger(__name__)

MAX_CONCURRENT_COLLECTIONS = 64
FIRST_POLL_WITHIN_S = 2.0  # a newly registered device is polled within this
JITTER_FRACTION = 0.05
MAX_JITTER_S = 15.0
QUEUE_GROUP = "collector"


@dataclass
class CollectorStats:
    """Counters for the performance events."""

    polls: int = 0
    skipped_fresh: int = 0
    refreshes: int = 0
    refused: int = 0
    failures: int = 0  # collections that ended in error or unsupported
    publish_errors: int = 0


@dataclass
class _Device:
    spec: DeviceSpec
    transport: Transport
    tasks: list[asyncio.Task] = field(default_factory=list)


def _jitter(interval_s: float) -> float:
    return random.uniform(0, min(interval_s * JITTER_FRACTION, MAX_JITTER_S))


class Collector:
    """Per-device poll tasks and transports, kept in step with the device registry."""

    def __init__(
        self, settings: Settings, js: JetStreamContext, kv: KeyValue,
        stats: CollectorStats | None = None, max_concurrent: int = MAX_CONCURRENT_COLLECTIONS,
    ) -> None:
        self.settings = settings
        self.names = Names(settings.subject_prefix)
        self.js = js
        self.kv = kv
        self.stats = stats or CollectorStats()
        self._devices: dict[uuid.UUID, _Device] = {}
        self._background: set[asyncio.Task] = set()
        self._slots = asyncio.Semaphore(max_concurrent)

    # ------------------------------------------------------------ devices

    async def on_device_changed(self, ev: DeviceChanged) -> None:
        """Registry listener: start, restart (new transport) or stop a device's polls."""
        spec = ev.spec
        current = self._devices.get(spec.id)
        if ev.action == "removed" or not spec.enabled:
            if current is not None:
                await self._stop_device(spec.id)
                log.info("device %s %s: polls stopped", spec.name, "removed" if ev.action == "removed" else "disabled")
            return
        if current is not None:
            if current.spec == spec:
                return
            await self._stop_device(spec.id)
        self._start_device(spec)

    def _start_device(self, spec: DeviceSpec) -> None:
        dev = _Device(spec, make_transport(spec, self.settings))
        for data_type in DATA_TYPES:
            task = asyncio.create_task(self._poll_loop(dev, data_type), name=f"poll-{spec.name}-{data_type}")
            dev.tasks.append(task)
        self._devices[spec.id] = dev
        log.info("device %s: polling %s", spec.name, ", ".join(DATA_TYPES))

    async def _stop_device(self, device_id: uuid.UUID) -> None:
        dev = self._devices.pop(device_id, None)
        if dev is None:
            return
        for task in dev.tasks:
            task.cancel()
        await asyncio.gather(*dev.tasks, return_exceptions=True)
        await dev.transport.close()

    def _find(self, device_id: uuid.UUID | None, name: str | None) -> _Device | None:
        if device_id is not None and device_id in self._devices:
            return self._devices[device_id]
        return next((d for d in self._devices.values() if d.spec.name == name), None)

    # ------------------------------------------------------------ polls

    async def _poll_loop(self, dev: _Device, data_type: str) -> None:
        module = DATA_TYPES[data_type]
        interval = module.INTERVAL_S
        await asyncio.sleep(random.uniform(0, FIRST_POLL_WITHIN_S))
        while True:
            threshold = min(freshness_s(data_type, self.settings), interval)
            age = await self._cached_age(dev.spec, data_type)
            if age is not None and age < threshold:
                self.stats.skipped_fresh += 1
                delay = threshold - age
            else:
                self.stats.polls += 1
                try:
                    await self.collect_and_publish(dev, data_type, trigger="poll")
                except Exception:  # keep polling whatever happened
                    log.exception("poll of %s on %s failed", data_type, dev.spec.name)
                delay = interval
            await asyncio.sleep(delay + _jitter(interval))

    async def _cached_age(self, spec: DeviceSpec, data_type: str) -> float | None:
        """Age in seconds of the cached value for this device (same id) and type, or None."""
        try:
            entry = await self.kv.get(Names.cache_key(spec.name, data_type))
        except KeyNotFoundError:
            return None
        except Exception as exc:
            log.warning("cache read for %s.%s failed, collecting: %s", spec.name, data_type, exc)
            return None
        try:
            cached = events.decode(entry.value or b"")
        except Exception:
            return None
        if not isinstance(cached, Collected) or cached.device_id != spec.id:
            return None
        return (events.utcnow() - cached.occurred_at).total_seconds()

    async def collect_and_publish(
        self, dev: _Device, data_type: str, *, trigger: Trigger,
        operation_id: uuid.UUID | None = None, force_refresh: bool = False,
    ) -> Collected:
        """Collect, publish the event, and cache it when it succeeded (success or partial)."""
        async with self._slots:
            ev = await collect(
                dev.transport, dev.spec, data_type, trigger=trigger, operation_id=operation_id,
                settings=self.settings, force_refresh=force_refresh,
            )
        if ev.status in ("error", "unsupported"):
            self.stats.failures += 1
        try:
            await publish_event(self.js, self.names.collected(dev.spec.name, data_type), ev)
        except Exception as exc:
            self.stats.publish_errors += 1
            log.error("publishing %s of %s failed: %s", data_type, dev.spec.name, exc)
            return ev
        if ev.status in ("success", "partial"):
            try:
                await self.kv.put(Names.cache_key(dev.spec.name, data_type), events.encode(ev))
            except Exception as exc:
                log.warning("cache write for %s.%s failed: %s", dev.spec.name, data_type, exc)
        return ev

    # ------------------------------------------------------------ refresh requests

    async def on_refresh(self, msg) -> None:
        """Core NATS callback: handle each request in its own task so one slow device
        does not hold up the others."""
        task = asyncio.create_task(self._refresh(msg))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _refresh(self, msg) -> None:
        try:
            req = events.decode(msg.data)
        except Exception as exc:
            log.warning("undecodable refresh request on %s: %s", msg.subject, exc)
            return
        if not isinstance(req, RefreshRequested):
            log.warning("unexpected %s event on %s", type(req).__name__, msg.subject)
            return
        tokens = msg.subject.split(".")
        name = req.device or (tokens[-2] if len(tokens) >= 4 else None)
        dev = self._find(req.device_id, name)
        reason = None
        if req.data_type not in DATA_TYPES:
            reason = f"unknown data type {req.data_type!r}; known: {', '.join(sorted(DATA_TYPES))}"
        elif dev is None:
            reason = f"device {name!r} is not registered or is disabled"
        if reason is not None or dev is None:
            await self._refuse(req, reason or "", msg)
            return
        self.stats.refreshes += 1
        ev = await self.collect_and_publish(
            dev, req.data_type, trigger="refresh", operation_id=req.operation_id, force_refresh=True
        )
        if msg.reply:
            try:
                await msg.respond(events.encode(ev))
            except Exception as exc:
                log.debug("refresh reply failed: %s", exc)

    async def _refuse(self, req: RefreshRequested, reason: str, msg) -> None:
        self.stats.refused += 1
        log.warning("refresh refused: %s", reason)
        ev = events.new_event(
            Audited, operation_id=req.operation_id, device_id=req.device_id, device=req.device,
            service=SERVICE, instance=self.settings.instance, trigger="refresh", status="error",
            error=reason, action="refresh_refused", data_type=req.data_type, force_refresh=True,
        )
        try:
            await publish_event(self.js, self.names.audit(SERVICE), ev)
            if msg.reply:
                await msg.respond(events.encode(ev))
        except Exception as exc:
            log.warning("publishing refusal failed: %s", exc)

    # ------------------------------------------------------------ shutdown

    async def close(self) -> None:
        """Cancel every poll and refresh task and close every transport."""
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        for device_id in list(self._devices):
            await self._stop_device(device_id)


async def run(settings: Settings, stop: asyncio.Event, *, stats: CollectorStats | None = None) -> None:
    """Run the collector until ``stop`` is set, then shut down cleanly and drain NATS."""
    names = Names(settings.subject_prefix)
    nc = await connect(settings, SERVICE)
    collector: Collector | None = None
    registry: DeviceRegistry | None = None
    sub = None
    try:
        js = nc.jetstream()
        await ensure(js, settings)
        kv = await js.key_value(names.cache_bucket)
        collector = Collector(settings, js, kv, stats)
        registry = DeviceRegistry(js, names)
        registry.on_change(collector.on_device_changed)
        await registry.start()
        sub = await nc.subscribe(names.all("refresh"), queue=QUEUE_GROUP, cb=collector.on_refresh)
        log.info("collector running: %d devices, data types %s", len(registry.by_id), ", ".join(DATA_TYPES))
        await stop.wait()
    finally:
        if sub is not None:
            try:
                await sub.unsubscribe()
            except Exception as exc:
                log.debug("unsubscribe: %s", exc)
        if registry is not None:
            await registry.stop()
        if collector is not None:
            await collector.close()
        try:
            await asyncio.wait_for(nc.drain(), timeout=10)
        except Exception as exc:
            log.warning("nats drain: %s", exc)
            await nc.close()
        log.info("collector stopped")
