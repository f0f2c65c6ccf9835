"""The collector's poll schedule: one loop per device and data type, at a fixed rate with
jitter, from the cached value's age when a device becomes this instance's (see
:mod:`services.collector.service`). A mixin of :class:`services.collector.service.Collector`."""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass, field

from services.collector.registry import DATA_TYPES
from services.collector.runner import freshness_s
from services.collector.state import CollectorState
from shared import events
from shared.events import DeviceSpec
from shared.runtime.transport import Transport

log = logging.getLogger("services.collector.service")


def _raise_if_cancelled() -> None:
    """End a poll loop whose cancellation was swallowed: Python 3.11's asyncio.wait_for (used by
    nats-py) returns its result when a cancellation arrives just as its future completes."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


@dataclass
class Device:
    """A polled device: its transport, poll tasks and the events that wake them."""

    spec: DeviceSpec
    transport: Transport
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    wake: dict[str, asyncio.Event] = field(default_factory=dict)
    key_refusals_seen: int = 0


class Polls(CollectorState):
    """Poll loops (need the Collector's settings, stats, membership, ``_devices``, ``_polled``,
    ``_cached``, ``publish_skip`` and ``collect_and_publish``)."""

    def interval_s(self, data_type: str) -> float:
        return float(self.settings.collector_interval_overrides.get(data_type, DATA_TYPES[data_type].INTERVAL_S))

    def _jitter(self, interval_s: float) -> float:
        """Centred on zero, so the polls of a device keep their mean rate of one per interval."""
        s = self.settings
        half = min(interval_s * s.collector_jitter_fraction, s.collector_max_jitter_s) / 2
        return random.uniform(-half, half)

    def _members_changed(self, members: frozenset[str]) -> None:
        for dev in self._devices.values():
            for event in dev.wake.values():
                event.set()

    async def _sleep(self, dev: Device, data_type: str, seconds: float) -> None:
        """Sleep, or less when the member set changes."""
        _raise_if_cancelled()
        wake = dev.wake[data_type]
        try:
            async with asyncio.timeout(max(seconds, 0)):
                await wake.wait()
        except TimeoutError:
            pass
        wake.clear()

    async def _poll_loop(self, dev: Device, data_type: str) -> None:
        loop = asyncio.get_running_loop()
        interval = self.interval_s(data_type)
        due: float | None = None  # loop time of the next poll; None while another instance owns the device
        await asyncio.sleep(random.uniform(0, self.settings.collector_first_poll_within_s))
        while True:
            _raise_if_cancelled()
            if not self.membership.owns(dev.spec.id):
                due = None
                await self._sleep(dev, data_type, interval)
                continue
            if due is None:  # this instance's from now on: first poll when the cached value turns stale
                age = await self._cached_age(dev.spec, data_type)
                due = loop.time() + (interval - age if age is not None and 0 <= age < interval else 0)
            if loop.time() < due:
                await self._sleep(dev, data_type, due - loop.time())
                continue
            started = loop.time()
            try:
                cached = await self._cached(dev.spec, data_type)  # read once per poll: age and previous payload
                age = None if cached is None else (events.utcnow() - cached.occurred_at).total_seconds()
                threshold = min(freshness_s(data_type, self.settings), interval)
                own = cached is not None and cached.event_id == self._polled.get((dev.spec.id, data_type))
                if age is not None and age < threshold and not own:  # a refresh or another instance's poll
                    await self.publish_skip(dev, data_type, age)
                    delay = threshold - age
                else:
                    self.stats.polls += 1
                    await self.collect_and_publish(dev, data_type, trigger="poll", cached=cached)
                    delay = interval
            except Exception:  # keep polling whatever happened
                log.exception("poll of %s on %s failed", data_type, dev.spec.name)
                delay = interval
            # From when this poll began: its duration does not stretch the interval (fixed rate);
            # a poll that outlasted its interval is followed by the next one at once.
            due = started + delay + self._jitter(interval)

    async def _cached_age(self, spec: DeviceSpec, data_type: str) -> float | None:
        cached = await self._cached(spec, data_type)
        return None if cached is None else (events.utcnow() - cached.occurred_at).total_seconds()
