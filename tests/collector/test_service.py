"""The collector service against real NATS JetStream and a real sshd."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import msgspec
import pytest
import pytest_asyncio
from nats.errors import NoRespondersError

from services.collector.service import Collector, CollectorStats, run
from services.collector.settings import CollectorSettings
from shared import events
from shared.collected import COLLECTED_TYPES
from shared.envelope import Collected
from shared.events import Audited, DeviceChanged, RefreshRequested
from shared.names import Names
from shared.runtime.devices import register, remove
from shared.runtime.embedded import free_port
from tests.collector.conftest import ssh_spec

pytestmark = pytest.mark.ssh

WAIT_S = 10  # upper bound for waiting on events, not a performance assertion


def only(settings, *data_types: str, **more) -> CollectorSettings:
    """The collector's settings polling only ``data_types``."""
    return CollectorSettings(**{**settings.model_dump(), "collector_data_types": list(data_types), **more})


@contextlib.asynccontextmanager
async def running(settings) -> AsyncIterator[CollectorStats]:
    """The service running as a task until the block ends; yields its stats."""
    stop, stats = asyncio.Event(), CollectorStats()
    task = asyncio.create_task(run(settings, stop, stats=stats))
    try:
        yield stats
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


@pytest_asyncio.fixture
async def collector_running(ssh_settings):
    """The service (system_metrics only) running as a task; yields its stats."""
    async with running(only(ssh_settings, "system_metrics")) as stats:
        yield stats


async def subscribe_and_register(js, names: Names, spec):
    """A subscription to the device's system_metrics events, then the device registered."""
    sub = await js.subscribe(names.collected(spec.name, "system_metrics"), ordered_consumer=True)
    await register(js, names, spec, "test", "test")
    return sub


def refresh_request(op: uuid.UUID, device: str, device_id: uuid.UUID | None = None) -> bytes:
    """An API's refresh request of the device's system_metrics."""
    return events.encode(events.new_event(
        RefreshRequested, operation_id=op, device_id=device_id, device=device, data_type="system_metrics",
        service="test", instance="test", trigger="api",
    ))


async def next_event(sub, predicate=lambda ev: True) -> events.AnyEvent:
    async with asyncio.timeout(WAIT_S):
        while True:
            msg = await sub.next_msg(timeout=WAIT_S)
            ev = events.decode(msg.data)
            if predicate(ev):
                return ev


async def cached(js, names: Names, device: str) -> Collected:
    kv = await js.key_value(names.cache_bucket)
    async with asyncio.timeout(WAIT_S):
        while True:
            try:
                entry = await kv.get(Names.cache_key(device, "system_metrics"))
                return events.decode(entry.value)
            except Exception:
                await asyncio.sleep(0.1)


async def test_polls_refreshes_and_isolates_failures(ssh_settings, ssh_server, nc, js, collector_running) -> None:
    names = Names(ssh_settings.subject_prefix)
    good = ssh_spec(ssh_server, name="good")
    bad = ssh_spec(ssh_server, name="bad", port=free_port())  # nothing listens there
    good_sub = await js.subscribe(names.collected("good", "system_metrics"), ordered_consumer=True)
    bad_sub = await js.subscribe(names.collected("bad", "system_metrics"), ordered_consumer=True)
    await register(js, names, bad, "test", "test")
    await register(js, names, good, "test", "test")

    polled = await next_event(good_sub)
    assert isinstance(polled, COLLECTED_TYPES["system_metrics"])
    assert (polled.status, polled.trigger, polled.device_id) == ("success", "poll", good.id), polled.error
    assert polled.payload.cpu_count >= 1 and polled.payload.memory_total_bytes > 0
    assert (await cached(js, names, "good")).event_id == polled.event_id

    failed = await next_event(bad_sub)
    assert failed.status == "error" and failed.payload is None
    assert "cannot connect" in failed.error and str(bad.port) in failed.error

    op = uuid.uuid4()
    await nc.publish(names.refresh("good", "system_metrics"), refresh_request(op, "good", good.id))
    refreshed = await next_event(good_sub, lambda ev: ev.operation_id == op)
    assert (refreshed.status, refreshed.trigger, refreshed.force_refresh) == ("success", "refresh", True)
    async with asyncio.timeout(WAIT_S):
        while (await cached(js, names, "good")).operation_id != op:
            await asyncio.sleep(0.1)
    assert collector_running.polls >= 2 and collector_running.refreshes == 1 and collector_running.failures >= 1


async def test_fresh_cache_schedules_the_first_poll_later(ssh_settings, ssh_server, js, collector_running) -> None:
    """A value cached a moment ago (another instance, a refresh) is not collected again at start."""
    names = Names(ssh_settings.subject_prefix)
    spec = ssh_spec(ssh_server, name="cachedhost")
    fresh = events.new_event(
        COLLECTED_TYPES["system_metrics"], device_id=spec.id, device=spec.name, service="collector", instance="other",
        trigger="refresh",
    )
    kv = await js.key_value(names.cache_bucket)
    await kv.put(Names.cache_key(spec.name, "system_metrics"), events.encode(fresh))
    sub = await subscribe_and_register(js, names, spec)
    with pytest.raises(Exception):  # nothing is collected while the cached value is fresh
        await sub.next_msg(timeout=4)
    assert collector_running.polls == 0


async def test_poll_after_a_refresh_is_skipped_with_an_event(ssh_settings, ssh_server, nc, js) -> None:
    names = Names(ssh_settings.subject_prefix)
    # polls start one interval apart: the interval leaves room for a refresh on a busy machine
    settings = only(ssh_settings, "system_metrics", collector_interval_overrides={"system_metrics": 8},
                    collector_first_poll_within_s=0.1, collector_jitter_fraction=0.0)
    async with running(settings) as stats:
        spec = ssh_spec(ssh_server, name="skippy")
        sub = await subscribe_and_register(js, names, spec)
        polled = await next_event(sub)
        assert polled.trigger == "poll" and not polled.skipped_fresh
        op = uuid.uuid4()
        await nc.publish(names.refresh(spec.name, "system_metrics"), refresh_request(op, spec.name, spec.id))
        refreshed = await next_event(sub)
        assert refreshed.operation_id == op
        skipped = await next_event(sub)
        assert (skipped.trigger, skipped.status, skipped.skipped_fresh) == ("poll", "success", True)
        assert skipped.payload is None and skipped.ssh_command_count == 0
        assert stats.skipped_fresh == 1 and stats.operations["skipped_fresh"] == 1


async def test_concurrent_refreshes_are_coalesced(ssh_settings, ssh_server, nc, js) -> None:
    names = Names(ssh_settings.subject_prefix)
    settings = only(ssh_settings, "system_metrics", collector_interval_overrides={"system_metrics": 3600})
    async with running(settings) as stats:
        spec = ssh_spec(ssh_server, name="busy")
        sub = await subscribe_and_register(js, names, spec)
        assert (await next_event(sub)).trigger == "poll"  # the device is known to the collector now
        ops = [uuid.uuid4() for _ in range(3)]
        for op in ops:
            await nc.publish(names.refresh(spec.name, "system_metrics"), refresh_request(op, spec.name, spec.id))
        seen: dict = {}
        async with asyncio.timeout(WAIT_S * 3):
            while not set(ops) <= set(seen):
                ev = events.decode((await sub.next_msg(timeout=WAIT_S)).data)
                seen[ev.operation_id] = ev
        answers = [seen[op] for op in ops]
        assert all(a.status == "success" and a.payload is not None for a in answers)
        leaders = {a.served_by or a.operation_id for a in answers}
        assert len(leaders) == 1  # one collection answered all three
        followers = [a for a in answers if a.served_by is not None]
        assert len(followers) >= 2 and all(f.ssh_command_count == 0 for f in followers)
        assert stats.coalesced >= 2


async def test_refresh_for_unknown_device_is_refused(ssh_settings, nc, js, collector_running) -> None:
    names = Names(ssh_settings.subject_prefix)
    sub = await js.subscribe(names.audit("collector"), ordered_consumer=True)
    op = uuid.uuid4()
    async with asyncio.timeout(WAIT_S):  # request/reply: retried until the service subscribed
        while True:
            try:
                subject = names.refresh("ghost", "system_metrics")
                reply = await nc.request(subject, refresh_request(op, "ghost"), timeout=WAIT_S)
                break
            except NoRespondersError:
                await asyncio.sleep(0.1)
    assert events.decode(reply.data).operation_id == op
    refused = await next_event(sub)
    assert isinstance(refused, Audited)
    assert (refused.action, refused.operation_id, refused.status) == ("refresh_refused", op, "error")
    assert collector_running.refused == 1
    assert "ghost" in refused.error


async def test_registry_changes_restart_and_stop_devices(ssh_settings, ssh_server, js) -> None:
    names = Names(ssh_settings.subject_prefix)
    collector = Collector(only(ssh_settings, "system_metrics"), js, await js.key_value(names.cache_bucket))
    spec = ssh_spec(ssh_server, name="changing")

    def change(action, s):
        return events.new_event(DeviceChanged, action=action, spec=s, service="test", instance="test", trigger="api")

    await collector.on_device_changed(change("registered", spec))
    first = collector._devices[spec.id].transport
    await collector.on_device_changed(change("updated", spec))  # same spec: nothing to do
    assert collector._devices[spec.id].transport is first
    moved = msgspec.structs.replace(spec, port=free_port())
    await collector.on_device_changed(change("updated", moved))
    second = collector._devices[spec.id].transport
    assert second is not first and first.closed and second.port == moved.port
    await collector.on_device_changed(change("removed", moved))
    assert spec.id not in collector._devices and second.closed
    await collector.close()


async def test_stops_cleanly_with_devices_registered(ssh_settings, ssh_server, js) -> None:
    names = Names(ssh_settings.subject_prefix)
    await register(js, names, ssh_spec(ssh_server, name="one"), "test", "test")
    await remove(js, names, "one", "test", "test")
    await register(js, names, ssh_spec(ssh_server, name="two"), "test", "test")
    async with running(only(ssh_settings, "system_metrics")) as stats:
        sub = await js.subscribe(names.collected("two", "system_metrics"), ordered_consumer=True)
        assert (await next_event(sub)).status == "success"
    assert stats.polls == 1


async def test_fixed_rate_polls_do_not_skip_their_own_results(ssh_settings, ssh_server, js) -> None:
    """Polls start one interval apart (jitter around zero), so a poll may find the previous
    poll's value a little younger than the freshness threshold: that value is its own and the
    poll collects; only values cached by others (refreshes, other instances) are skipped."""
    names = Names(ssh_settings.subject_prefix)
    settings = only(ssh_settings, "system_metrics", collector_interval_overrides={"system_metrics": 1},
                    freshness_overrides={"system_metrics": 1}, collector_first_poll_within_s=0.1,
                    collector_jitter_fraction=0.2, metrics_port=-1)
    async with running(settings) as stats:
        sub = await subscribe_and_register(js, names, ssh_spec(ssh_server, name="steady"))
        seen = [await next_event(sub) for _ in range(4)]
    assert [ev.skipped_fresh for ev in seen] == [False] * 4 and stats.skipped_fresh == 0
