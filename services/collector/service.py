"""The collector service: polls the devices this instance owns for every data type, answers
refresh requests, publishes each operation as one collected event and caches successes.

Scheduling. Each device and type has its own loop: a poll every ``INTERVAL_S`` from the start
of the previous one (jitter centred on zero, so the mean rate is one per interval). A
poll that comes due while the cached value is younger than ``min(freshness, interval)`` (a
refresh a moment ago) collects nothing and publishes an event with ``skipped_fresh``. When a
device becomes this instance's (start, takeover), its first poll is scheduled from the cached
value's age, so a restart or a takeover does not collect everything again at once.

Refresh requests (core NATS, queue group ``collector``: any instance serves them) collect at
once. Requests for a device and type whose collection is already running join it: each still
gets its own event, with its own operation_id and ``served_by`` naming the collection.

Sharing. Instances heartbeat into ``infra_collectors`` (shared.runtime.membership); each
device is polled only by its rendezvous owner among the live instances, and a dead instance's
devices are taken over within ``collector_member_timeout_s`` plus their interval.

Connections. One transport per device from the process's TransportPool (shared with a watcher
in the same process); a changed host key is refused by the transport and reported here as an
``Audited`` event with action ``host_key_changed`` on ``<prefix>.audit.collector``.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import msgspec
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from services.collector import policy
from services.collector.registry import DATA_TYPES, EVENTS
from services.collector.requests import Requests
from services.collector.runner import SERVICE, collect, freshness_s
from services.collector.schedule import Device, Polls
from services.collector.settings import CollectorSettings, collector_settings
from shared import events
from shared.events import Collected, DeviceChanged, DeviceSpec, Trigger
from shared.names import Names
from shared.runtime.bootstrap import ensure
from shared.runtime.devices import DeviceRegistry
from shared.runtime.lifecycle import DeviceService
from shared.runtime.membership import Membership
from shared.runtime.nats_conn import connect, drain
from shared.runtime.perf import Perf, publish_loop, serve_metrics
from shared.runtime.publish import publish_event
from shared.runtime.transport import TransportPool, transport_pool
from shared.settings import Settings

log = logging.getLogger(__name__)

QUEUE_GROUP = "collector"
_UNREAD = object()  # the cached event was not read by the caller
SEND_GRACE_S = 15.0  # at shutdown, for publishes under way


@dataclass
class CollectorStats:
    """Counters of one collector instance (the lead exposes them on /metrics)."""

    polls: int = 0
    skipped_fresh: int = 0
    refreshes: int = 0
    coalesced: int = 0  # operations answered by a collection already running
    refused: int = 0
    failures: int = 0  # collections that ended in error or unsupported
    published: int = 0  # collected events JetStream acknowledged
    publish_errors: int = 0
    host_key_alerts: int = 0
    devices_refused: int = 0  # device changes refused for a setting the collector does not accept
    operations: Counter = field(default_factory=Counter)  # by status; skips count as "skipped_fresh"
    pool: TransportPool | None = None

    def counters(self) -> dict[str, Any]:
        """Every counter in one dict, with the connections created/reused and commands executed."""
        out: dict[str, Any] = {k: v for k, v in vars(self).items() if isinstance(v, int)}
        out["operations"] = dict(self.operations)
        out.update(self.pool.totals() if self.pool else {})
        return out


class Collector(Requests, Polls):
    """Per-device poll loops and transports, kept in step with the device registry."""

    def __init__(
        self, settings: Settings, js: JetStreamContext, kv: KeyValue,
        stats: CollectorStats | None = None, *, pool: TransportPool | None = None,
        membership: Membership | None = None,
    ) -> None:
        self.settings: CollectorSettings = collector_settings(settings)
        self.names = Names(settings.subject_prefix)
        self.js = js
        self.kv = kv
        self.stats = stats or CollectorStats()
        self.perf = Perf(SERVICE)
        self.pool = pool or TransportPool()
        self.stats.pool = self.pool
        s = self.settings
        self.membership = membership or Membership(None, s.instance, s.collector_heartbeat_s,
                                                   s.collector_member_timeout_s)
        self.membership.on_change(self._members_changed)
        self.data_types = [t for t in DATA_TYPES if not s.collector_data_types or t in s.collector_data_types]
        self._devices: dict[uuid.UUID, Device] = {}
        self._by_name: dict[str, uuid.UUID] = {}
        self._refused: dict[uuid.UUID, tuple[DeviceSpec, policy.RefusedSetting]] = {}
        self._background: set[asyncio.Task] = set()
        self._slots = asyncio.Semaphore(max(1, s.collector_max_concurrent))
        self._inflight: dict[tuple[uuid.UUID, str], asyncio.Future] = {}
        self._previous: dict[tuple[uuid.UUID, str], Any] = {}
        self._memory: dict[tuple[uuid.UUID, str], dict] = {}  # each type's own state per device
        self._polled: dict[tuple[uuid.UUID, str], uuid.UUID] = {}  # event id of this instance's last poll
        self._sending: set[asyncio.Task] = set()

    # ------------------------------------------------------------ devices

    async def on_device_changed(self, ev: DeviceChanged) -> None:
        """Registry listener: start, restart (new transport) or stop a device's polls."""
        spec = ev.spec
        current = self._devices.get(spec.id)
        self._refused.pop(spec.id, None)
        refused = None if ev.action == "removed" or not spec.enabled else policy.refusal(spec, self.settings)
        if refused is not None:
            if current is not None:
                await self._stop_device(spec.id)
            self._refused[spec.id] = (spec, refused)
            await self._publish_refused(spec, refused)
            return
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
        dev = Device(spec, self.pool.acquire(spec, self.settings))
        for data_type in self.data_types:
            dev.wake[data_type] = asyncio.Event()
            task = asyncio.create_task(self._poll_loop(dev, data_type), name=f"poll-{spec.name}-{data_type}")
            dev.tasks.append(task)
        self._devices[spec.id] = dev
        self._by_name[spec.name] = spec.id
        log.info("device %s: %s", spec.name, "polling" if self.membership.owns(spec.id) else "polled by another instance")

    async def _stop_device(self, device_id: uuid.UUID) -> None:
        dev = self._devices.pop(device_id, None)
        if dev is None:
            return
        if self._by_name.get(dev.spec.name) == device_id:
            del self._by_name[dev.spec.name]
        for data_type in self.data_types:
            self._memory.pop((device_id, data_type), None)
            self._polled.pop((device_id, data_type), None)
        for task in dev.tasks:
            task.cancel()
        await asyncio.gather(*dev.tasks, return_exceptions=True)
        await self.pool.release(dev.transport)

    def _find(self, device_id: uuid.UUID | None, name: str | None) -> Device | None:
        if device_id is not None and device_id in self._devices:
            return self._devices[device_id]
        found = self._by_name.get(name) if name else None
        return self._devices.get(found) if found is not None else None

    async def _cached(self, spec: DeviceSpec, data_type: str) -> Collected | None:
        """The cached event for this device (same id) and type, or None."""
        try:
            entry = await self.kv.get(Names.cache_key(spec.name, data_type))
        except KeyNotFoundError:
            return None
        except Exception as exc:
            log.warning("cache read for %s.%s failed: %s", spec.name, data_type, exc)
            return None
        try:
            cached = events.decode(entry.value or b"")
        except Exception:
            return None
        if not isinstance(cached, Collected) or cached.device_id != spec.id:
            return None
        return cached

    async def _previous_payload(self, dev: Device, data_type: str, cached: Any = _UNREAD) -> Any:
        """The last successful payload (for removed containers, inventory drift): the cache
        first (another instance may have collected since), else this instance's memory."""
        if not hasattr(DATA_TYPES[data_type], "with_previous"):
            return None
        if cached is _UNREAD:
            cached = await self._cached(dev.spec, data_type)
        if cached is not None and getattr(cached, "payload", None) is not None:
            return cached.payload
        return self._previous.get((dev.spec.id, data_type))

    async def publish_skip(self, dev: Device, data_type: str, age_s: float) -> Collected:
        """The event of a poll that found a fresh cached value."""
        self.stats.skipped_fresh += 1
        self.stats.operations["skipped_fresh"] += 1
        ev = events.new_event(
            EVENTS[data_type], device_id=dev.spec.id, device=dev.spec.name, service=SERVICE,
            instance=self.settings.instance, trigger="poll", status="success", skipped_fresh=True,
            collection_method=dev.transport.method, freshness_threshold_s=freshness_s(data_type, self.settings),
            warnings=[f"cached value is {age_s:.1f}s old: fresh, nothing collected"],
        )
        await self._publish(dev, data_type, ev, cache=False)
        return ev

    async def collect_and_publish(
        self, dev: Device, data_type: str, *, trigger: Trigger,
        operation_id: uuid.UUID | None = None, force_refresh: bool = False, cached: Any = _UNREAD,
    ) -> Collected:
        """Collect, publish the event, cache it when it succeeded (success or partial). An
        operation arriving while the same device and type is being collected joins it.
        ``cached``: the cached event when the caller has just read it."""
        key = (dev.spec.id, data_type)
        running = self._inflight.get(key)
        if running is not None:
            return await self._join(dev, data_type, running, trigger, operation_id, force_refresh)
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            async with self._slots:
                ev = await collect(
                    dev.transport, dev.spec, data_type, trigger=trigger, operation_id=operation_id,
                    settings=self.settings, force_refresh=force_refresh,
                    previous=await self._previous_payload(dev, data_type, cached), memory=self._memory.setdefault(key, {}),
                )
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody joined
            raise
        finally:
            self._inflight.pop(key, None)  # from now on a request gets a collection of its own
        future.set_result(ev)
        if trigger == "poll":
            self._polled[key] = ev.event_id
        self.stats.operations[ev.status] += 1
        if ev.status in ("error", "unsupported"):
            self.stats.failures += 1
        elif getattr(ev, "payload", None) is not None:
            self._previous[key] = ev.payload
        await self._publish(dev, data_type, ev, cache=ev.status in ("success", "partial"))
        await self._check_host_key(dev)
        return ev

    async def _join(self, dev: Device, data_type: str, running: asyncio.Future, trigger: Trigger,
                    operation_id: uuid.UUID | None, force_refresh: bool) -> Collected:
        loop = asyncio.get_running_loop()
        start = loop.time()
        leader: Collected = await asyncio.shield(running)
        self.stats.coalesced += 1
        self.stats.operations[leader.status] += 1
        event_id = uuid.uuid4()
        ev = msgspec.structs.replace(
            leader, event_id=event_id, operation_id=operation_id or event_id, occurred_at=events.utcnow(),
            trigger=trigger, force_refresh=force_refresh, served_by=leader.operation_id, ssh_command_count=0,
            data_size_bytes=0, duration_ms=round((loop.time() - start) * 1000, 3),
        )
        await self._publish(dev, data_type, ev, cache=False)
        return ev

    async def sample(self) -> None:
        """Bring the transports' running totals and the device count into the perf counters."""
        for name, total in (self.pool.totals() if self.pool else {}).items():
            self.perf.observe_total(f"ssh_{name}", total)
        self.perf.gauge("devices", len(self._devices), "devices this instance polls")

    async def _publish(self, dev: Device, data_type: str, ev: Collected, *, cache: bool) -> None:
        cached = bool(getattr(ev, "skipped_fresh", False) or getattr(ev, "served_by", None))
        self.perf.operation(ev.status, ev.duration_ms, cached=cached,
                            error_type=f"{data_type}:{ev.status}" if ev.status in ("error", "unsupported") else None)
        self.perf.add("data_collected_bytes", ev.data_size_bytes)
        # A result is published even when its poll is cancelled meanwhile (shutdown): close() waits for it.
        task = asyncio.create_task(self._send(dev.spec.name, data_type, ev, cache))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)
        await asyncio.shield(task)

    async def _send(self, device: str, data_type: str, ev: Collected, cache: bool) -> None:
        try:
            await publish_event(self.js, self.names.collected(device, data_type), ev)
        except Exception as exc:
            self.stats.publish_errors += 1
            log.error("publishing %s of %s failed: %s", data_type, device, exc)
            return
        self.stats.published += 1
        if cache:
            try:
                await self.kv.put(Names.cache_key(device, data_type), events.encode(ev))
            except Exception as exc:
                log.warning("cache write for %s.%s failed: %s", device, data_type, exc)

    # ------------------------------------------------------------ shutdown

    async def close(self) -> None:
        """Cancel every poll and refresh task, release every transport, and wait (at most
        ``SEND_GRACE_S``) for the results already collected to be published."""
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await asyncio.gather(*(self._stop_device(d) for d in list(self._devices)), return_exceptions=True)
        if self._sending:
            _, pending = await asyncio.wait(set(self._sending), timeout=SEND_GRACE_S)
            for task in pending:
                task.cancel()
            if pending:
                self.stats.publish_errors += len(pending)
                log.error("%d collected events not published before shutdown", len(pending))


async def run(settings: Settings, stop: asyncio.Event, *, stats: CollectorStats | None = None,
              pool: TransportPool | None = None) -> None:
    """Run the collector until ``stop`` is set, then shut down cleanly and drain NATS.
    ``pool``: the transports to use (default: the process's pool)."""
    settings = collector_settings(settings)
    names = Names(settings.subject_prefix)
    nc = await connect(settings, SERVICE)
    parts = DeviceService()
    sub = None
    try:
        js = nc.jetstream()
        await ensure(js, settings)
        kv = await js.key_value(names.cache_bucket)

        async def reopen() -> KeyValue:
            await ensure(js, settings)  # creates what is missing, the bucket among it
            return await js.key_value(names.collectors_bucket)

        membership = parts.membership = Membership(
            await js.key_value(names.collectors_bucket), settings.instance, settings.collector_heartbeat_s,
            settings.collector_member_timeout_s, reopen)
        await membership.beat()  # know the others before the first poll
        parts.heartbeat()
        collector = parts.service = Collector(settings, js, kv, stats, pool=pool or transport_pool(),
                                              membership=membership)
        registry = parts.registry = DeviceRegistry(js, names)
        registry.on_change(collector.on_device_changed)
        await registry.start()
        sub = await nc.subscribe(names.all("refresh"), queue=QUEUE_GROUP, cb=collector.on_refresh)
        log.info("collector %s running: %d devices, data types %s", membership.me, len(registry.by_id),
                 ", ".join(collector.data_types))
        serve_metrics(collector.perf, settings)
        await publish_loop(js, settings, collector.perf, stop, collector.sample)
    finally:
        if sub is not None:
            try:
                await sub.unsubscribe()
            except Exception as exc:
                log.debug("unsubscribe: %s", exc)
        await parts.stop()
        await drain(nc)
        log.info("collector stopped")
